// The ONNX reader and rewriter on graphs torch 1.13 exported (the sample's model.onnx) and the onnx
// package re-saved with external data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CheckpointError } from '../../../main/errors.ts';
import { initializerBytes, loadOnnxModel, parseOnnxModel } from '../../../main/formats/onnx/onnx-model.ts';
import { rewriteModel } from '../../../main/verify/onnx-rewrite.ts';
import { PbWriter } from '../../../main/formats/onnx/protobuf.ts';
import { fx, MODEL, tempDir } from './helpers.ts';

test("reads torch's eval export: producer, opset, nodes, initializers and the input's symbolic batch", () => {
  const m = loadOnnxModel(MODEL);
  assert.equal(m.producer, 'pytorch 1.13.0');
  assert.equal(m.opset, 13);
  assert.deepEqual(m.inputs, [{ name: 'input', elemType: 1, dims: ['batch', 1, 8, 8] }]);
  assert.deepEqual(m.outputs, [{ name: 'logits', elemType: 1, dims: ['batch', 10] }]);
  assert.deepEqual(
    m.nodes.map((n) => `${n.name}:${n.opType}`),
    ['/conv1/Conv:Conv', '/Relu:Relu', '/conv2/Conv:Conv', '/Relu_1:Relu', '/pool/MaxPool:MaxPool', '/Flatten:Flatten', '/fc/Gemm:Gemm'],
  );
  assert.deepEqual(m.nodes[0]!.inputs, ['input', 'onnx::Conv_27', 'onnx::Conv_28']);
  assert.deepEqual(
    m.initializers.map((t) => [t.name, t.dims.join('x'), t.dtype]),
    [
      ['fc.weight', '10x256', 'float32'],
      ['fc.bias', '10', 'float32'],
      ['onnx::Conv_27', '8x1x3x3', 'float32'],
      ['onnx::Conv_28', '8', 'float32'],
      ['onnx::Conv_30', '16x8x3x3', 'float32'],
      ['onnx::Conv_31', '16', 'float32'],
    ],
  );
  assert.equal(m.nodes.find((n) => n.opType === 'Gemm')!.attrs['transB'], 1);
});

test('external data: every initializer of model.onnx.data reads back equal to the embedded graph', () => {
  const inline = loadOnnxModel(MODEL);
  const ext = loadOnnxModel(fx('external/model.onnx'));
  assert.ok(ext.initializers.every((t) => t.external?.location === 'model.onnx.data'));
  assert.ok(ext.bytes.length < 2000, 'the graph itself holds no weights');
  for (const t of inline.initializers) {
    const e = ext.initializers.find((x) => x.name === t.name)!;
    assert.deepEqual(Buffer.from(initializerBytes(ext, e)), Buffer.from(initializerBytes(inline, t)), t.name);
  }
});

test('a graph without its .data file, or naming a file outside its folder, is a one-line error', () => {
  const dir = tempDir();
  copyFileSync(fx('external/model.onnx'), join(dir, 'model.onnx'));
  const m = loadOnnxModel(join(dir, 'model.onnx'));
  assert.throws(
    () => initializerBytes(m, m.initializers[0]!),
    (e: CheckpointError) => e.kind === 'io' && /external data model\.onnx\.data cannot be read .*keep it beside the \.onnx file/.test(e.message),
  );
  // the same graph with every location rewritten to the same length: '../model.onnx.d'
  const bytes = readFileSync(fx('external/model.onnx'));
  const m2 = parseOnnxModel(Buffer.from(bytes.toString('latin1').replace(/model\.onnx\.data/g, '../model.onnx.d'), 'latin1'), join(dir, 'model.onnx'));
  assert.throws(() => initializerBytes(m2, m2.initializers[0]!), /points outside the model's folder/);
});

test('damaged and foreign files fail with typed errors', () => {
  const good = readFileSync(MODEL);
  assert.throws(
    () => parseOnnxModel(good.subarray(0, good.length - 100), 'cut.onnx'),
    (e: CheckpointError) => e.kind === 'truncated' && e.file === 'cut.onnx' && !e.message.includes('\n'),
  );
  assert.throws(
    () => parseOnnxModel(new Uint8Array(0), 'empty.onnx'),
    (e: CheckpointError) => e.kind === 'not-a-checkpoint',
  );
  assert.throws(() => parseOnnxModel(readFileSync(fx('corrupt_fc.pt')), 'x.pt'), CheckpointError);
  assert.throws(() => parseOnnxModel(new PbWriter().varintField(1, 7).finish(), 'nograph.onnx'), /not an ONNX model/);
});

test('rewriting replaces exactly the named initializers; onnxruntime runs the result', async () => {
  const m = loadOnnxModel(MODEL);
  const zeros = new Uint8Array(10 * 4);
  const out = rewriteModel(m, new Map([['fc.bias', zeros]]));
  const back = parseOnnxModel(out, 'rewritten.onnx');
  assert.deepEqual(
    back.initializers.map((t) => t.name),
    m.initializers.map((t) => t.name),
  );
  assert.deepEqual(Buffer.from(initializerBytes(back, back.initializers[1]!)), Buffer.from(zeros));
  assert.deepEqual(Buffer.from(initializerBytes(back, back.initializers[0]!)), Buffer.from(initializerBytes(m, m.initializers[0]!)));
  // nothing else moved: everything outside the graph field is byte-identical
  assert.deepEqual(Buffer.from(out.subarray(0, m.graphField.start)), Buffer.from(m.bytes.subarray(0, m.graphField.start)));
  // no replacement at all gives back the very same bytes
  assert.deepEqual(Buffer.from(rewriteModel(m, new Map())), Buffer.from(m.bytes));

  const x = new ort.Tensor('float32', new Float32Array(64).fill(0.5), [1, 1, 8, 8]);
  const a = await (await ort.InferenceSession.create(m.bytes)).run({ input: x });
  const b = await (await ort.InferenceSession.create(out)).run({ input: x });
  const la = a['logits']!.data as Float32Array;
  const lb = b['logits']!.data as Float32Array;
  const bias = new Float32Array(Uint8Array.from(initializerBytes(m, m.initializers[1]!)).buffer);
  // Gemm adds the bias last: zeroing it shifts every logit by exactly minus the bias
  for (let i = 0; i < 10; i++) assert.ok(Math.abs(la[i]! - bias[i]! - lb[i]!) < 1e-5, `logit ${i}`);
});

test('an external-data graph is inlined on rewrite and runs like the embedded one', async () => {
  const ext = loadOnnxModel(fx('external/model.onnx'));
  const out = rewriteModel(ext, new Map());
  assert.ok(parseOnnxModel(out, 'x').initializers.every((t) => t.external === null));
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 128 }, (_, i) => (i % 17) / 16),
    [2, 1, 8, 8],
  );
  const a = (await (await ort.InferenceSession.create(out)).run({ input: x }))['logits']!.data as Float32Array;
  // onnxruntime itself reading model.onnx.data beside the graph file
  const b = (await (await ort.InferenceSession.create(fx('external/model.onnx'))).run({ input: x }))['logits']!.data as Float32Array;
  const c = (await (await ort.InferenceSession.create(MODEL)).run({ input: x }))['logits']!.data as Float32Array;
  assert.deepEqual(Array.from(a), Array.from(b));
  assert.deepEqual(Array.from(a), Array.from(c));
});
