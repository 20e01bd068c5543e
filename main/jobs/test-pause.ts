import * as fs from 'node:fs';

/**
 * A hook for the interop tests, inert unless the environment variable `variable` names a file:
 * then it creates that file and blocks (at most 30 s) until the test removes it, so the test can
 * change the world at exactly this step (e.g. remove a source between discovery and planning).
 */
export function pauseForTest(variable: string): void {
  const flag = process.env[variable];
  if (!flag) return;
  fs.writeFileSync(flag, String(process.pid));
  const until = Date.now() + 30_000;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (fs.existsSync(flag) && Date.now() < until) Atomics.wait(cell, 0, 0, 10);
}
