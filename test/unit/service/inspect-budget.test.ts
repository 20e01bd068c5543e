// Inspect jobs in the app (web mode and Electron share the JobRunner) have a time budget, and a
// newer inspect replaces the one still running; either way the worker is stopped, so hostile
// files cannot tie up the quick pool (issue 16: two of them made the next inspect wait 27.6 s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../../../main/errors.ts';
import { JobRunner } from '../../../main/service/job-runner.ts';
import { manyTensorSafetensors } from '../../fuzz/hostile-inputs.ts';

const SMALL = new URL('../../fixtures/torch/cpu_state_dict.pt', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'ckpt-inspect-budget-'));
const slow = join(dir, 'many.safetensors');
writeFileSync(slow, manyTensorSafetensors(500_000)); // takes seconds to inspect
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function rejection(p: Promise<unknown>): Promise<CheckpointError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CheckpointError, String(e));
    return e;
  }
  return assert.fail('expected the inspect to be stopped');
}

test('an inspect over its time budget is stopped with a one-line reason naming the file; the pool goes on', async () => {
  const jobs = new JobRunner(() => {}, 2, 1500);
  try {
    const [a, b] = await Promise.all([rejection(jobs.run({ kind: 'inspect', file: slow })), rejection(jobs.run({ kind: 'inspect', file: slow }))]);
    // the second replaced the first; the second ran out of time
    assert.equal(a.kind, 'cancelled');
    assert.equal(b.kind, 'too-large');
    assert.equal(b.message, `${slow}: inspecting it took longer than 1.5 s and was stopped; \`ckpt inspect\` in a terminal has no time limit`);
    const report = await jobs.run({ kind: 'inspect', file: SMALL });
    assert.equal(report.totals.tensors, 16);
  } finally {
    await jobs.close();
  }
});

test('opening another file cancels the inspect still running', async () => {
  const jobs = new JobRunner(() => {}, 2, 60_000);
  try {
    const first = rejection(jobs.run({ kind: 'inspect', file: slow }));
    await new Promise((r) => setTimeout(r, 100));
    const second = jobs.run({ kind: 'inspect', file: SMALL });
    const stopped = await first;
    assert.equal(stopped.kind, 'cancelled');
    assert.match(stopped.message, /a newer request replaced it/);
    assert.equal((await second).totals.tensors, 16);
  } finally {
    await jobs.close();
  }
});
