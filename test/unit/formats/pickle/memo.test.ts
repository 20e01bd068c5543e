// PickleMemo (main/formats/pickle/memo.ts): indices stored without their value (not read back) are
// counted once each and still answer `has`, wherever they fall: the bitmap that holds the dense run
// from 0 starts small and grows, and indices it does not reach go to a Set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PickleMemo } from '../../../../main/formats/pickle/memo.ts';

test('a memo that keeps only the read-back indices counts every other index once, in order or not', () => {
  const memo = new PickleMemo<string>(new Set([3, 70_000]));
  const stored = new Set<number>();
  const put = (i: number): void => {
    memo.set(i, `v${i}`);
    stored.add(i);
  };
  for (let i = 0; i < 100_000; i++) put(i); // torch.save's order: dense from 0
  for (const i of [5, 127, 128, 99_999, 0]) put(i); // again: counted once
  assert.equal(memo.size, stored.size);
  assert.equal(memo.get(3), 'v3');
  assert.equal(memo.get(70_000), 'v70000');
  assert.equal(memo.get(4), undefined); // counted, not held
  for (const i of [0, 4, 127, 128, 8191, 8192, 16_383, 65_535, 99_999]) assert.ok(memo.has(i), `index ${i}`);
  assert.ok(!memo.has(100_000));
});

test('indices that jump past the bitmap (a first index of 10,000, then 60,000, then small ones) are counted and found', () => {
  const memo = new PickleMemo<number>(new Set([1]));
  const order = [10_000, 60_000, 2, 16_383, 16_384, 40_000, 10_000, 2, 2 ** 40, 2 ** 40, -1, 0.5];
  for (const i of order) memo.set(i, i);
  assert.equal(memo.size, new Set(order).size);
  for (const i of order) assert.ok(memo.has(i), `index ${i}`);
  for (const i of [3, 9_999, 16_385, 59_999, 2 ** 40 + 1]) assert.ok(!memo.has(i), `index ${i}`);
});
