import * as fs from 'node:fs';

/**
 * Test hooks that stop the process at a named step, inert unless a test's environment asks.
 * Unset, each costs one environment lookup. Both block the thread (Atomics.wait), so nothing
 * else of the process moves while a test acts.
 */

const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/**
 * For the kill tests: when `CKPT_TEST_PAUSE_AT` names `step` (a comma-separated list), the
 * process says `ckpt-test: paused at <step>` on stderr and sleeps there for a minute, so a test
 * can SIGKILL it inside that window.
 */
export function pauseForTest(step: string): void {
  const at = process.env['CKPT_TEST_PAUSE_AT'];
  if (!at || !at.split(',').includes(step)) return;
  fs.writeSync(2, `ckpt-test: paused at ${step}\n`);
  sleep(60_000);
}

/**
 * For the interop tests: when the environment variable `variable` names a file, creates that
 * file and blocks (at most 30 s) until the test removes it, so the test can change the world at
 * exactly this step (e.g. remove a source between discovery and planning).
 */
export function pauseUntilFileRemoved(variable: string): void {
  const flag = process.env[variable];
  if (!flag) return;
  fs.writeFileSync(flag, String(process.pid));
  const until = Date.now() + 30_000;
  while (fs.existsSync(flag) && Date.now() < until) sleep(10);
}
