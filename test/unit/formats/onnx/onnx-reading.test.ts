// ONNX files open as checkpoints (they used to be "not a PyTorch checkpoint (starts with 08 07 12…)"):
// the initializers torch.onnx.export wrote, by name, shape and dtype, each reading back the bytes
// torch put there, whether inline (torch 1.13's sample export) or in external data (torch 2.13's
// dynamo export, onnx's re-save).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../../../../main/errors.ts';
import { openFormat } from '../../../../main/formats/open-format.ts';
import { initializerBytes, loadOnnxModel } from '../../../../main/formats/onnx/onnx-model.ts';
import { looksLikeOnnx } from '../../../../main/formats/onnx/onnx-reading.ts';
import { PyDict } from '../../../../main/formats/values/python-values.ts';
import { TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { readTensorBytes } from '../../../../main/checkpoint/tensor-bytes.ts';
import { planConversion } from '../../../../main/convert/plan.ts';
import { NO_RULES } from '../../../../shared/presets.ts';
import { fx, MODEL, sample } from '../../verify/helpers.ts';

test("the sample's torch 1.13 export: its initializers by name, shape and dtype, with fc's bytes equal to the checkpoint torch exported", () => {
  const r = openFormat(MODEL);
  try {
    assert.equal(r.format, 'onnx');
    assert.deepEqual(r.records, { ir_version: '7', opset: '13', producer: 'pytorch 1.13.0', nodes: '7' });
    const root = r.root as PyDict;
    assert.deepEqual(
      root.entries.map(([k, v]) => [k, (v as TorchTensor).dtype.name, (v as TorchTensor).shape.join('x')]),
      [
        ['fc.weight', 'float32', '10x256'],
        ['fc.bias', 'float32', '10'],
        ['onnx::Conv_27', 'float32', '8x1x3x3'],
        ['onnx::Conv_28', 'float32', '8'],
        ['onnx::Conv_30', 'float32', '16x8x3x3'],
        ['onnx::Conv_31', 'float32', '16'],
      ],
    );
    // fc is not folded by the exporter: its bytes are the trained checkpoint's own
    const ck = openCheckpoint(sample('cpu.pt'));
    try {
      for (const key of ['fc.weight', 'fc.bias']) {
        const fromCkpt = ck.tensors.find((t) => t.path.at(-1) === key)!.tensor;
        assert.deepEqual(Buffer.from(readTensorBytes(root.get(key) as TorchTensor)), Buffer.from(readTensorBytes(fromCkpt)), key);
      }
    } finally {
      ck.close();
    }
  } finally {
    r.close();
  }
});

test('external data (onnx re-save, torch 2.13 dynamo): each tensor reads the bytes the verify parser reads', () => {
  for (const file of [fx('external/model.onnx'), fx('torch2/conv1d/dynamo-nocf.onnx')]) {
    const model = loadOnnxModel(file);
    const r = openFormat(file);
    try {
      assert.equal(r.format, 'onnx');
      const byName = new Map((r.root as PyDict).entries.map(([k, v]) => [String(k), v as TorchTensor]));
      assert.equal(byName.size, model.initializers.length, file);
      for (const init of model.initializers) {
        const t = byName.get(init.name)!;
        assert.deepEqual(t.shape, init.dims, init.name);
        assert.equal(t.dtype.name, init.dtype, init.name);
        assert.deepEqual(Buffer.from(readTensorBytes(t)), Buffer.from(initializerBytes(model, init)), `${file} ${init.name}`);
      }
    } finally {
      r.close();
    }
  }
});

test('inspect says what it is and how it loads; convert refuses it in one line', () => {
  const ck = openCheckpoint(MODEL);
  try {
    const r = ck.report;
    assert.equal(r.format, 'onnx');
    assert.equal(r.totals.tensors, 6);
    assert.deepEqual(r.layout.evidence[0], 'ONNX initializers at the top level with 6 keys');
    assert.equal(r.loading?.torchLoad, false);
    assert.equal(r.loading?.how, 'onnxruntime.InferenceSession(f)');
    assert.equal(r.loading?.convertible, false);
    assert.match(r.notes[0]!, /^an ONNX graph: 7 nodes, input input \[batch×1×8×8\]/);
    const plan = planConversion(ck, { ...NO_RULES, preset: { name: 'cpu' } }, '/tmp/ckpt-onnx-never-written.pt');
    assert.ok(
      plan.errors.some((e) => /^an ONNX graph, not a torch checkpoint: ckpt convert does not rewrite it/.test(e)),
      plan.errors.join('\n'),
    );
  } finally {
    ck.close();
  }
});

test('the match is the ModelProto opening: ir_version then another field, not any 0x08 byte', () => {
  assert.equal(looksLikeOnnx(new Uint8Array([0x08, 0x07, 0x12, 0x07])), true);
  assert.equal(looksLikeOnnx(new Uint8Array([0x08, 0x0a, 0x3a, 0x00])), true);
  assert.equal(looksLikeOnnx(new Uint8Array([0x08, 0x07, 0x08, 0x07])), false);
  assert.equal(looksLikeOnnx(new Uint8Array([0x08, 0x00, 0x12])), false);
  assert.equal(looksLikeOnnx(new Uint8Array([0x08, 0x07])), false);
});

test('a truncated ONNX file is a one-line error naming it, not a crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-onnx-'));
  const cut = join(dir, 'cut.onnx');
  writeFileSync(cut, readFileSync(MODEL).subarray(0, 2000));
  assert.throws(
    () => openFormat(cut),
    (e: CheckpointError) => e.kind === 'truncated' && e.message.startsWith(`${cut}: `) && !e.message.includes('\n'),
  );
});

test('an external initializer whose declared length is not its dims × element size is refused when its bytes are read', () => {
  // fc.weight 10×256 float32 declares length "10240" in external/model.onnx: same-width "10244" keeps the protobuf valid
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-onnx-'));
  const bytes = readFileSync(fx('external/model.onnx'));
  const at = bytes.indexOf(Buffer.from('length\x12\x0510240', 'latin1'));
  assert.ok(at > 0, 'the fixture declares length 10240');
  bytes.write('10244', at + 8, 'latin1');
  const file = join(dir, 'model.onnx');
  writeFileSync(file, bytes);
  copyFileSync(fx('external/model.onnx.data'), join(dir, 'model.onnx.data'));
  const r = openFormat(file);
  try {
    const bad = (r.root as PyDict).entries.find(([, v]) => (v as TorchTensor).shape.join('x') === '10x256');
    assert.ok(bad, 'a 10x256 initializer');
    assert.throws(
      () => readTensorBytes(bad[1] as TorchTensor),
      (e: CheckpointError) => /external data length 10244 does not match 10x256 × 4 bytes/.test(e.message) && !e.message.includes('\n'),
    );
  } finally {
    r.close();
  }
});
