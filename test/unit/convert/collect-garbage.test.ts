// collectGarbage: a full collection at once, without --expose-gc on the command line (the CLI's
// worker has none): garbage made just before is gone from the heap afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
