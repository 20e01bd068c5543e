// The Verify view's line under the runs' throughputs: one timed pass each, so short runs and
// small gaps are called noise, and only a large gap on long runs names the faster run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunResult, VerifyReport } from '../../../shared/verify.ts';
import { speedNote } from '../../../renderer/src/views/verify/runs.ts';

function report(...runs: [label: 'checkpoint' | 'against', seconds: number, imagesPerSecond: number][]): VerifyReport {
  return {
    options: { against: '/w/dp.pt', checkpoint: '/w/dp-cpu.pt' },
    runs: runs.map(([label, inferenceSeconds, imagesPerSecond]) => ({ label, inferenceSeconds, imagesPerSecond }) as RunResult),
  } as VerifyReport;
}

test('a single run has nothing to compare', () => {
  assert.equal(speedNote(report(['checkpoint', 2, 1000])), 'one timed pass');
});

test('runs of a few milliseconds are too short to compare, whatever the gap', () => {
  assert.equal(
    speedNote(report(['checkpoint', 0.0037, 98_355], ['against', 0.0023, 157_856])),
    'too short to compare: 2 ms of inference in the shorter run, one timed pass each',
  );
});

test('long runs under 25% apart are within noise; further apart, the faster run is named', () => {
  assert.equal(speedNote(report(['checkpoint', 10, 900], ['against', 9, 1000])), 'within timing noise: 10% apart, one timed pass each');
  assert.equal(speedNote(report(['checkpoint', 10, 500], ['against', 5, 1000])), 'Source ran 2.0× as fast (one timed pass each; run again to confirm)');
  assert.equal(speedNote(report(['checkpoint', 5, 1000], ['against', 10, 500])), 'Converted ran 2.0× as fast (one timed pass each; run again to confirm)');
});
