// LogitComparison: batches whose logits are bit-identical take a memcmp instead of the per-value
// loop; the figures must be the ones the loop gives, in every mix of identical and differing batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogitComparison, RunScore } from '../../../main/verify/metrics.ts';

const K = 3;
const metrics = (logits: Float32Array) => {
  const s = new RunScore(logits.length / K, K);
  s.add(logits, 0, logits.length / K, new Int32Array(logits.length / K));
  return s.finish();
};

test('bit-identical batches, NaN included, count as zero difference and keep bitIdentical', () => {
  const c = new LogitComparison(K, 1e-5, 1e-4);
  const a = new Float32Array([1, 2, 3, Number.NaN, 0.5, -1]);
  c.add(a, a.slice(), 2);
  const r = c.finish('a', 'b', metrics(a), metrics(a));
  assert.equal(r.bitIdentical, true);
  assert.equal(r.maxAbsLogitDiff, 0);
  assert.equal(r.maxRelDiff, 0);
  assert.equal(r.outsideTolerance, 0);
  assert.equal(r.diffHistogram.zero, 2);
});

test('an identical batch, then one with +0 against -0 and one value off: the loop figures, summed', () => {
  const c = new LogitComparison(K, 1e-5, 1e-4);
  c.add(new Float32Array([1, 2, 3]), new Float32Array([1, 2, 3]), 1);
  c.add(new Float32Array([0, 2, 3, 4, 5, 6.5]), new Float32Array([-0, 2, 3, 4, 5, 6]), 2);
  const a = new Float32Array([1, 2, 3, 0, 2, 3, 4, 5, 6.5]);
  const r = c.finish('a', 'b', metrics(a), metrics(a));
  assert.equal(r.bitIdentical, false, '+0 and -0 differ in their bits');
  assert.equal(r.diffHistogram.zero, 2, 'the identical batch and the +0/-0 sample');
  assert.equal(r.maxAbsLogitDiff, 0.5);
  assert.equal(r.maxRelDiff, 0.5 / 6.5);
  assert.equal(r.outsideTolerance, 1);
  assert.equal(r.diffHistogram.decades.find((d) => d.from === 0.1)!.count, 1);
});
