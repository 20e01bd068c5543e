import * as fs from 'node:fs';

/**
 * A test hook for the kill tests: when `CKPT_TEST_PAUSE_AT` names a step (comma-separated list),
 * the process says `ckpt-test: paused at <step>` on stderr and sleeps there for a minute, so a
 * test can SIGKILL it inside that window. Unset, it costs one environment lookup.
 */
export function pauseForTest(step: string): void {
  const at = process.env['CKPT_TEST_PAUSE_AT'];
  if (!at || !at.split(',').includes(step)) return;
  fs.writeSync(2, `ckpt-test: paused at ${step}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
}
