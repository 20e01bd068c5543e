// collectGarbage: a full collection at once, without --expose-gc on the command line (the CLI's
// worker has none): garbage made just before is gone from the heap afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { collectGarbage } from '../../../main/convert/collect-garbage.ts';

test('collectGarbage frees what nothing holds any more', () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'run without --expose-gc');
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  let garbage: { i: number }[] | null = Array.from({ length: 500_000 }, (_, i) => ({ i }));
  const held = process.memoryUsage().heapUsed;
  assert.ok(held - before > 10e6, `${held - before} bytes held`);
  garbage = null;
  collectGarbage();
  const after = process.memoryUsage().heapUsed;
  assert.equal(garbage, null);
  assert.ok(after - before < (held - before) / 4, `${after - before} of ${held - before} bytes left after collecting`);
});

test('collectGarbage leaves --expose-gc unset: contexts and workers made afterwards have no gc', async () => {
  // V8 flags are per process, and with one changed a worker compiles Node's own modules without
  // their code cache (main/cli/v8-tuning.ts): the app's pool starts workers after conversions
  collectGarbage();
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  assert.equal(runInNewContext('typeof gc'), 'undefined', 'a context made after it has no gc: the flag is back to its default');
  const seen = await new Promise<unknown>((resolve, reject) => {
    const w = new Worker(
      "const { parentPort } = require('node:worker_threads'); parentPort.postMessage([typeof gc, require('node:vm').runInNewContext('typeof gc')])",
      { eval: true },
    );
    w.once('message', (m) => void w.terminate().then(() => resolve(m)));
    w.once('error', reject);
  });
  assert.deepEqual(seen, ['undefined', 'undefined'], 'a worker started after it starts with the flag unset');
  // …and the collection still works after the flag is unset
  const before = process.memoryUsage().heapUsed;
  let garbage: { i: number }[] | null = Array.from({ length: 500_000 }, (_, i) => ({ i }));
  const held = process.memoryUsage().heapUsed;
  garbage = null;
  collectGarbage();
  assert.equal(garbage, null);
  assert.ok(process.memoryUsage().heapUsed - before < (held - before) / 4, 'collected');
});
