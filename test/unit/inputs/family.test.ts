// Per-rank families: FSDP2 (DTensor) and FSDP1 (ShardedTensor) rank files consolidated into the
// full tensors torch gathered; a 2x2 mesh whose placements torch itself located; DDP ranks merged
// only when they are copies (the 1.13 gloo run's BatchNorm statistics differ); split and merge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { convertFile } from '../../../main/convert/convert-file.ts';
import { NO_RULES } from '../../../shared/presets.ts';
import { openFormat } from '../../../main/formats/open-format.ts';
import { PyDict } from '../../../main/formats/values/python-values.ts';
import type { TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { Family } from '../../../main/inputs/family.ts';
import { localShards } from '../../../main/inputs/placements.ts';
import { fx, run, tensorsOf, tmp, why } from '../reshard/helpers.ts';

interface Full {
  tensors: { key: string; dtype: string; shape: number[]; sha256: string; ranks?: { local_shape: number[]; global_offset: number[] }[] | null }[];
}
const full = (p: string): Full => JSON.parse(readFileSync(fx(p), 'utf8')) as Full;

function assertFull(out: string, exp: Full): void {
  const got = tensorsOf(out);
  assert.deepEqual(
    [...got.keys()],
    exp.tensors.map((t) => t.key),
    'same keys, same order',
  );
  for (const e of exp.tensors) assert.deepEqual(got.get(e.key), { dtype: e.dtype, shape: e.shape, sha256: e.sha256 }, e.key);
}

test('FSDP2 DTensor rank files consolidate to the tensors full_tensor() gathered (files, folder, or one rank file)', async () => {
  const dir = tmp();
  const exp = full('torch2/fsdp_sharded/full.expected.json');
  const ranks = [fx('torch2/fsdp_sharded/rank0.pt'), fx('torch2/fsdp_sharded/rank1.pt')];
  for (const [i, inputs] of [ranks, [ranks[1]!]].entries()) {
    const out = join(dir, `full${i}.pt`);
    const r = await run(inputs, { target: { kind: 'single' }, output: out });
    assert.ok(r.verified, why(r));
    assert.equal(r.plan.input.kind, 'sharded-ranks');
    assert.deepEqual(r.differing, [], 'the replicated BN buffers agree on both ranks');
    assert.equal(r.pieceChecks, 20, 'each of the 10 sharded tensors: 2 pieces cut back out and matched');
    assertFull(out, exp);
  }
});

test('FSDP1 ShardedTensor rank files consolidate to the full tensors', async () => {
  const out = join(tmp(), 'full.pt');
  const r = await run([fx('torch2/fsdp_sharded/fsdp1_sharded_tensor')], { target: { kind: 'single' }, output: out });
  assert.ok(r.verified, why(r));
  assertFull(out, full('torch2/fsdp_sharded/fsdp1_sharded_tensor/full.expected.json'));
});

test("2x2 mesh DTensors: every rank's piece is where torch computes it, and the consolidation is torch's full_tensor()", async () => {
  const exp = full('reshard/mesh2d/full.expected.json');
  for (let r = 0; r < 4; r++) {
    const reading = openFormat(fx(`reshard/mesh2d/rank${r}.pt`));
    try {
      for (const e of exp.tensors) {
        if (!e.ranks) continue;
        const t = (reading.root as PyDict).get(e.key) as TorchTensor;
        const [s] = localShards(t, e.key);
        assert.deepEqual({ local_shape: s!.sizes, global_offset: s!.offsets }, e.ranks[r], `${e.key} on rank ${r}`);
      }
    } finally {
      reading.close();
    }
  }
  const out = join(tmp(), 'full.pt');
  const rep = await run(
    [0, 1, 2, 3].map((r) => fx(`reshard/mesh2d/rank${r}.pt`)),
    { target: { kind: 'single' }, output: out },
  );
  assert.ok(rep.verified, why(rep));
  assertFull(out, exp);
  const rows = new Map(rep.plan.input.rows.map((x) => [x.name, x]));
  assert.equal(rows.get('layer.c')!.spread, 'replicated', 'Replicate on both mesh dims: 4 copies of one piece');
  assert.equal(rows.get('layer.a')!.pieces.length, 4);
});

test('DDP ranks that differ are not merged: the report names the BatchNorm statistics (real 1.13 gloo run)', async () => {
  const dir = tmp();
  const out = join(dir, 'merged.pt');
  const r = await run([fx('torch/ddp_gloo')], { target: { kind: 'single' }, output: out });
  assert.equal(r.plan.input.kind, 'rank-family');
  assert.equal(r.written, false);
  assert.equal(existsSync(out), false);
  assert.deepEqual(r.differing.map((d) => d.name).sort(), [
    'module.bn1.running_mean',
    'module.bn1.running_var',
    'module.bn2.running_mean',
    'module.bn2.running_var',
  ]);
  for (const d of r.differing) {
    assert.deepEqual(d.ranks, [1]);
    assert.equal(d.reason, 'values differ');
    assert.notEqual(d.hashes![0], d.hashes![1]);
  }
  assert.deepEqual(readdirSync(dir), [], 'nothing written, no temporary file left');
  // told which rank to take, it merges and still reports the differences
  const taken = await run([fx('torch/ddp_gloo/rank0.pt'), fx('torch/ddp_gloo/rank1.pt')], { target: { kind: 'single' }, output: out, takeRank: 1 });
  assert.ok(taken.verified, why(taken));
  assert.equal(taken.differing.length, 4);
  assert.deepEqual([...tensorsOf(out)], [...tensorsOf(fx('torch/ddp_gloo/rank1.pt'))]);
});

test('split one file into DDP rank files, then merge them back into the same checkpoint', async () => {
  const dir = tmp();
  const src = fx('torch/cpu_state_dict.pt');
  const r = await run([src], { target: { kind: 'ranks', count: 3 }, output: join(dir, 'model.pt') });
  assert.ok(r.verified, why(r));
  assert.deepEqual(readdirSync(dir).sort(), ['model.rank0.pt', 'model.rank1.pt', 'model.rank2.pt']);
  const source = tensorsOf(src);
  for (let k = 0; k < 3; k++) {
    const reading = openFormat(join(dir, `model.rank${k}.pt`));
    try {
      const ts = walkTensors(reading.root);
      assert.ok(
        ts.every((t) => String(t.path[0]).startsWith('module.') && t.tensor.device === `cuda:${k}`),
        `rank ${k}: 'module.' keys on cuda:${k}`,
      );
      assert.deepEqual(
        ts.map((t) => (t.tensor.storage ? tensorsOf(reading).get(t.path.join('/'))!.sha256 : '')),
        [...source.values()].map((t) => t.sha256),
      );
    } finally {
      reading.close();
    }
  }
  const merged = join(dir, 'merged.pt');
  const m = await run([join(dir, 'model.rank0.pt'), join(dir, 'model.rank1.pt'), join(dir, 'model.rank2.pt')], {
    target: { kind: 'single' },
    output: merged,
    preset: { name: 'cpu' },
  });
  assert.ok(m.verified, why(m));
  assert.deepEqual(m.differing, [], 'the copies are identical (device tags aside)');
  assert.deepEqual([...tensorsOf(merged)], [...source]);
});

test('ckpt convert opens an FSDP rank file as the consolidated model, and a DCP folder as one checkpoint', async () => {
  const dir = tmp();
  const out = join(dir, 'fsdp.pt');
  const r = await convertFile(fx('torch2/fsdp_sharded/rank1.pt'), { rules: { ...NO_RULES, preset: { name: 'cpu' } }, output: out, force: false });
  assert.ok(r.verified);
  assertFull(out, full('torch2/fsdp_sharded/full.expected.json'));
  const out2 = join(dir, 'dcp.pt');
  const c = await convertFile(fx('torch2/dcp'), { rules: { ...NO_RULES, preset: { name: 'cpu' } }, output: out2, force: false });
  assert.ok(c.verified);
  assert.deepEqual([...tensorsOf(out2)], [...tensorsOf(fx('torch2/dcp/expected_single.pt'))]);
  // a family object can also be used directly
  const f = Family.open([fx('torch2/fsdp_sharded/rank0.pt'), fx('torch2/fsdp_sharded/rank1.pt')]);
  try {
    assert.equal(f.sharded, true);
    assert.equal(f.assemblies.length, 10);
  } finally {
    f.close();
  }
});
