// The DeepSpeed reader on the real corpus (../shared/corpus/deepspeed), without torch: every
// variant's consolidated state dict has reference.json's keys in order, dtypes, shapes and the
// sha256 of every tensor's bytes; the summary names stage, world size, precision, tag, groups,
// frozen and shared params; DeepSpeed's classes are named in the security scan, never run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { readDeepSpeedFolder } from '../../../../main/formats/deepspeed/read-deepspeed.ts';
import { streamSource } from '../../../../main/formats/values/tensor-source.ts';
import { PyDict } from '../../../../main/formats/values/python-values.ts';
import { TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { tensorSource } from '../../../../main/reshard/plan.ts';
import { scanFile } from '../../../../main/checkpoint/scan/scan-file.ts';
import { securityOfPath } from '../../../../main/checkpoint/security.ts';
import { DEEPSPEED_DIR as DS, deepSpeedVariants, sharedSkipReason } from '../../../helpers/shared-dir.ts';

const skip = sharedSkipReason(DS) ?? false;
const VARIANTS = skip ? [] : deepSpeedVariants();

interface Reference {
  keys_in_order: string[];
  tensors: Record<string, { dtype: string; shape: number[]; sha256: string; same_tensor_as?: string }>;
  variant: { stage: number; ws: number; dtype: string };
}

for (const v of VARIANTS) {
  test(`${v}: the consolidated tensors are reference.json's, byte for byte`, () => {
    const ref = JSON.parse(fs.readFileSync(path.join(DS, v, 'reference.json'), 'utf8')) as Reference;
    const r = readDeepSpeedFolder(path.join(DS, v, 'checkpoint'));
    try {
      assert.equal(r.zero.stage, ref.variant.stage);
      assert.equal(r.zero.worldSize, ref.variant.ws);
      assert.equal(r.zero.precision, ref.variant.dtype);
      assert.equal(r.zero.tag, 'global_step2');
      const root = r.root as PyDict;
      assert.deepEqual(
        root.entries.map(([k]) => k),
        ref.keys_in_order,
      );
      for (const k of ref.keys_in_order) {
        const t = root.get(k);
        assert.ok(t instanceof TorchTensor, k);
        const want = ref.tensors[k]!;
        assert.equal(t.dtype.name, want.dtype, k);
        assert.deepEqual(t.shape, want.shape, k);
        const h = createHash('sha256');
        streamSource(tensorSource(t), (c) => h.update(c));
        assert.equal(h.digest('hex'), want.sha256, `${k} bytes`);
        if (want.same_tensor_as) assert.equal(t, root.get(want.same_tensor_as), `${k} is the same tensor as ${want.same_tensor_as}`);
      }
      assert.deepEqual(r.zero.shared, [['head.weight', 'embed.weight']]);
      assert.deepEqual(r.zero.paramGroups, [
        { params: 3, numel: 174 },
        { params: 5, numel: 44 },
      ]);
      assert.deepEqual(r.zero.frozen, ref.variant.stage === 1 ? [] : ['frozen.weight', 'frozen.bias']);
      assert.equal(r.zero.optimizerState, true);
      assert.equal(r.zero.lossScaler?.curScale, 1);
    } finally {
      r.close();
    }
  });
}

test("inspect names the ZeRO facts and DeepSpeed's classes as known unknown-class globals", { skip }, () => {
  const c = openCheckpoint(path.join(DS, 'stage2-ws2-bf16', 'checkpoint'));
  try {
    const rep = c.report;
    assert.equal(rep.format, 'deepspeed');
    assert.equal(rep.records['zero_stage'], '2');
    assert.equal(rep.records['precision'], 'bf16');
    assert.equal(rep.records['shared_params'], 'head.weight → embed.weight');
    const names = [...new Set(rep.security.globals.filter((g) => g.class === 'unknown-class').map((g) => g.name))].sort(); // listed once per rank file
    assert.deepEqual(names, [
      'deepspeed.runtime.fp16.loss_scaler.LossScaler',
      'deepspeed.runtime.zero.config.ZeroStageEnum',
      'deepspeed.utils.tensor_fragment.fragment_address',
    ]);
    for (const g of rep.security.globals.filter((x) => x.class === 'unknown-class')) assert.match(g.reason, /^DeepSpeed .*ckpt reads it as data$/);
    assert.equal(
      rep.fileBytes,
      ['mp_rank_00_model_states.pt', 'bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt', 'bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt'].reduce(
        (a, f) => a + fs.statSync(path.join(DS, 'stage2-ws2-bf16', 'checkpoint', 'global_step2', f)).size,
        0,
      ),
    );
  } finally {
    c.close();
  }
});

test('the pickle scans made while reading the rank files are the scans `ckpt scan` makes of them, so the security scan walks no pickle twice', { skip }, () => {
  for (const v of VARIANTS) {
    const folder = path.join(DS, v, 'checkpoint');
    const r = readDeepSpeedFolder(folder);
    try {
      const files = [...r.zero.optimFiles, ...r.zero.modelFiles];
      assert.deepEqual([...r.pickleScans.keys()].sort(), [...files].sort(), v);
      for (const f of files) {
        const scans = r.pickleScans.get(f)!;
        assert.equal(scans.size, 1, `${v}: ${path.basename(f)}'s data.pkl was scanned as it was read`);
        assert.deepEqual(scanFile(f, scans), scanFile(f), `${v}: ${path.basename(f)}`);
      }
      assert.deepEqual(securityOfPath(folder, r.pickleScans), securityOfPath(folder), v);
    } finally {
      r.close();
    }
  }
});
