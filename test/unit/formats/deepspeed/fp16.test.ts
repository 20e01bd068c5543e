// fp16 ZeRO runs (test/fixtures/deepspeed/fp16, written by make_fp16.py with torch 1.13 in the
// layout of DeepSpeed 0.19.6's save_checkpoint): the fp16 precision and the DynamicLossScaler state
// are read from the files, the loss scaler is a named DeepSpeed class in the security scan, and the
// trainable params are the fp32 master weights, not the module's fp16 copies (some masters lie
// beyond fp16's range). Their values against reference.pth with torch: test/interop/deepspeed.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { readDeepSpeedFolder } from '../../../../main/formats/deepspeed/read-deepspeed.ts';
import { streamSource } from '../../../../main/formats/values/tensor-source.ts';
import { PyDict } from '../../../../main/formats/values/python-values.ts';
import { TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { tensorSource } from '../../../../main/reshard/plan.ts';

const FP16 = fileURLToPath(new URL('../../../fixtures/deepspeed/fp16', import.meta.url));

function floats(t: TorchTensor): number[] {
  const parts: Buffer[] = [];
  streamSource(tensorSource(t), (c) => parts.push(Buffer.from(c)));
  const b = Buffer.concat(parts);
  return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
}

for (const stage of [2, 3]) {
  test(`ZeRO-${stage} fp16: precision, DynamicLossScaler, and the fp32 masters beyond fp16's range`, () => {
    const r = readDeepSpeedFolder(path.join(FP16, `stage${stage}-ws2-fp16`, 'checkpoint'));
    try {
      assert.equal(r.zero.stage, stage);
      assert.equal(r.zero.precision, 'fp16');
      assert.deepEqual(r.zero.lossScaler, { className: 'deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler', curScale: 32768, dynamic: true });
      assert.deepEqual(r.zero.frozen, ['frozen.weight']);
      assert.deepEqual(r.zero.shared, [['head.weight', 'embed.weight']]);
      const root = r.root as PyDict;
      assert.deepEqual(
        root.entries.map(([k]) => k),
        ['norm.running_mean', 'norm.num_batches_tracked', 'frozen.weight', 'embed.weight', 'proj.weight', 'proj.bias', 'head.bias', 'head.weight'],
      );
      const dtypes = root.entries.map(([, t]) => (t as TorchTensor).dtype.name);
      assert.deepEqual(dtypes, ['float32', 'float32', 'float16', 'float32', 'float32', 'float32', 'float32', 'float32']);
      const proj = root.get('proj.weight') as TorchTensor;
      assert.deepEqual(floats(proj).slice(0, 3), [70000, Math.fround(1e-8), -1e5]);
      assert.equal(r.records['size_as_fp16'], r.records['size_as_bf16']);
    } finally {
      r.close();
    }
  });
}

test('inspect lists the fp16 loss scaler as a known DeepSpeed class, never run', () => {
  const c = openCheckpoint(path.join(FP16, 'stage3-ws2-fp16', 'checkpoint'));
  try {
    assert.equal(c.report.records['precision'], 'fp16');
    assert.equal(c.report.records['loss_scaler'], 'DynamicLossScaler cur_scale=32768');
    const unknown = c.report.security.globals.filter((g) => g.class === 'unknown-class');
    const names = [...new Set(unknown.map((g) => g.name))].sort();
    assert.deepEqual(names, ['deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler', 'deepspeed.runtime.zero.config.ZeroStageEnum']);
    for (const g of unknown) assert.match(g.reason, /^DeepSpeed .*ckpt reads it as data$/);
  } finally {
    c.close();
  }
});
