// Real DistributedDataParallel, both directions: the rank files of a real gloo DDP run convert to
// cpu and load into a plain SmallCNN; a plain state dict converted to `ddp --world-size 2` loads
// in a real 2-process gloo DDP run (CPU), each rank its own file, strict, then one training step.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, TORCH_FIXTURES, checkWithTorch, removeTemps, reportOf, runCliAsync, runPython, tempDir, torchSkipReason } from './helpers.ts';

const skip = torchSkipReason();
after(removeTemps);

test('real DDP rank files (ddp_gloo) → cpu load into a plain SmallCNN with strict=True', { skip: skip ?? false }, async () => {
  const dir = tempDir('ddp-gloo');
  const checks = [];
  for (const r of [0, 1]) {
    const o = join(dir, `rank${r}.cpu.pt`);
    const run = await runCliAsync(['convert', join(TORCH_FIXTURES, 'ddp_gloo', `rank${r}.pt`), '--preset', 'cpu', '-o', o, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const rep = reportOf(run.stdout);
    assert.equal(rep.verified, true);
    assert.deepEqual(rep.plan.stateDicts[0]!.stripped, ['module.']);
    checks.push({ id: `rank${r}`, kind: 'tags', file: o, expect: 'cpu', model: 'plain', same_as: join(TORCH_FIXTURES, 'ddp_gloo', `rank${r}.pt`) });
  }
  const res = checkWithTorch(checks);
  for (const id of ['rank0', 'rank1']) {
    const r = res.get(id)!;
    assert.deepEqual(r.errors, [], r.errors.join('\n'));
    assert.equal(r.info['loaded_into'], 'SmallCNN');
    assert.deepEqual(r.info['storage_tags'], { cpu: 16 });
    assert.equal(r.info['tensors_compared'], 16);
  }
});

test('cpu_state_dict → ddp --world-size 2: each rank file loads in a real 2-rank gloo DDP run', { skip: skip ?? false, timeout: 150_000 }, async () => {
  const dir = tempDir('ddp-real');
  const target = join(dir, 'model.pth');
  const run = await runCliAsync(['convert', join(TORCH_FIXTURES, 'cpu_state_dict.pt'), '--preset', 'ddp', '--world-size', '2', '-o', target, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const rep = reportOf(run.stdout);
  const files = [0, 1].map((r) => join(dir, `model.rank${r}.pth`));
  assert.deepEqual(
    rep.outputs.map((o) => [o.file, o.rank, o.verified]),
    files.map((f, r) => [f, r, true]),
  );
  assert.ok(!existsSync(target), 'no un-ranked file beside the rank files');
  const t0 = Date.now();
  const res = runPython<{ ranks: any[] }>(
    'ddp_load.py',
    { fixtures_dir: FIXTURES, files, reference: join(TORCH_FIXTURES, 'cpu_state_dict.pt'), timeout_s: 60 },
    120_000,
  );
  console.log(`# real gloo DDP run: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(res.ranks.length, 2);
  for (const r of res.ranks) {
    assert.equal(r.error, undefined, `rank ${r.rank}: ${r.error}\n${(r.trace ?? []).join('\n')}`);
    assert.deepEqual(r.tags, [`cuda:${r.rank}`], `rank ${r.rank} storage tags`);
    assert.equal(r.storages, 16);
    assert.deepEqual([r.missing, r.unexpected], [[], []]);
    assert.equal(r.equal_to_reference, true, 'weights equal the original after the strict load');
    assert.deepEqual(r.forward, [4, 10]);
    assert.equal(r.grads_synced, true, 'all-reduced gradients agree across ranks');
  }
});
