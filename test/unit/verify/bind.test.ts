// Binding graph initializers to checkpoint tensors: by name (also torch.export's placeholder names),
// by recomputing torch's folded Conv+BatchNorm, and never on a name alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { NO_RULES } from '../../../shared/presets.ts';
import { convertFile } from '../../../main/convert/convert-file.ts';
import { mangle, planBindings, scopePath } from '../../../main/verify/bind.ts';
import { openWeights } from '../../../main/verify/checkpoint-weights.ts';
import { foldedBias, foldedWeight } from '../../../main/verify/fold-conv-bn.ts';
import { initializerBytes, loadOnnxModel } from '../../../main/formats/onnx/onnx-model.ts';
import { toFloat64 } from '../../../main/verify/tensor-values.ts';
import { fx, MODEL, sample, tempDir } from './helpers.ts';

const plan = (model: string, files: [string, string][], opts = {}) => {
  const runs = files.map(([label, f]) => ({ label, weights: openWeights(f) }));
  try {
    return planBindings(loadOnnxModel(model), runs, opts);
  } finally {
    for (const r of runs) r.weights.close();
  }
};

test("the folded Conv+BatchNorm weights recomputed from cpu.pt equal torch's onnx::Conv_* initializers bit for bit", () => {
  const m = loadOnnxModel(MODEL);
  const w = openWeights(sample('cpu.pt'));
  const f32 = (k: string): Float64Array => toFloat64(w.bytes(k), 'float32');
  const graph = (name: string): Float64Array => toFloat64(initializerBytes(m, m.initializers.find((t) => t.name === name)!), 'float32');
  for (const [conv, bn, wName, bName] of [
    ['conv1', 'bn1', 'onnx::Conv_27', 'onnx::Conv_28'],
    ['conv2', 'bn2', 'onnx::Conv_30', 'onnx::Conv_31'],
  ] as const) {
    const inputs = {
      weight: f32(`${conv}.weight`),
      convBias: f32(`${conv}.bias`),
      gamma: f32(`${bn}.weight`),
      beta: f32(`${bn}.bias`),
      mean: f32(`${bn}.running_mean`),
      variance: f32(`${bn}.running_var`),
      eps: 1e-5,
      dtype: 'float32',
    };
    assert.deepEqual(Array.from(foldedWeight(inputs).values), Array.from(graph(wName)), wName);
    assert.deepEqual(Array.from(foldedBias(inputs).values), Array.from(graph(bName)), bName);
    // in float64 arithmetic the results differ from torch's float32 ones, but only by float32 rounding
    const wide = foldedWeight({ ...inputs, dtype: 'float64' }).values;
    const g = graph(wName);
    const rel = Math.max(...wide.map((x, i) => Math.abs(x - g[i]!) / Math.abs(g[i]!)));
    assert.ok(rel > 0 && rel <= 2 ** -22, `relative difference ${rel}`);
  }
  w.close();
});

test('the sample graph binds fully: 2 tensors by name, 4 recomputed, confirmed with zero difference', () => {
  const p = plan(MODEL, [['checkpoint', sample('cpu.pt')]]);
  assert.deepEqual(p.report.counts, { bound: 2, recomputed: 4, unconfirmed: 0, constants: 0 });
  assert.equal(p.report.coverage, 1);
  const conv = p.report.initializers.find((i) => i.name === 'onnx::Conv_30')!;
  assert.deepEqual(conv.from, ['conv2.weight', 'conv2.bias', 'bn2.weight', 'bn2.bias', 'bn2.running_mean', 'bn2.running_var']);
  assert.deepEqual(
    [conv.kind, conv.via, conv.confirmedBy, conv.maxAbsDiff, conv.used],
    ['recomputed', 'conv+bn fold', ['checkpoint'], { checkpoint: 0 }, true],
  );
  assert.deepEqual(p.report.unusedTensors, { checkpoint: ['bn1.num_batches_tracked', 'bn2.num_batches_tracked'] });
  assert.deepEqual(p.report.bnEps, { bn1: 1e-5, bn2: 1e-5 });
  assert.equal(p.replacements.get('checkpoint')!.size, 6);
});

test('wrapper prefixes do not matter: DataParallel, DDP rank, training checkpoint, whole module and legacy files bind the same', () => {
  const base = plan(MODEL, [['checkpoint', sample('cpu.pt')]]);
  for (const f of ['dp.pt', 'cuda1.pt', 'ddp/rank1.pt', 'checkpoint.pth.tar', 'whole_model_dp.pt', 'legacy_cpu.pt']) {
    const p = plan(MODEL, [['checkpoint', sample(f)]]);
    assert.deepEqual(p.report.counts, base.report.counts, f);
    for (const [name, bytes] of base.replacements.get('checkpoint')!)
      assert.deepEqual(Buffer.from(p.replacements.get('checkpoint')!.get(name)!), Buffer.from(bytes), `${f} ${name}`);
  }
  const w = openWeights(sample('whole_model_dp.pt'));
  assert.deepEqual(
    [...w.bnEps],
    [
      ['bn1', 1e-5],
      ['bn2', 1e-5],
    ],
    'a whole pickled module carries its BatchNorm eps',
  );
  assert.deepEqual(w.prefixes, ['module.']);
  w.close();
});

test('an unfolded export binds all 14 tensors by value; torch.export names (p_conv1_weight, b_bn1_running_mean) too', () => {
  const named = plan(fx('unfolded.onnx'), [['checkpoint', sample('dp.pt')]]);
  assert.deepEqual(named.report.counts, { bound: 14, recomputed: 0, unconfirmed: 0, constants: 0 });
  assert.ok(named.report.initializers.every((i) => i.via === 'value' && i.from![0] === i.name));
  const dyn = plan(fx('dynamo-names.onnx'), [['checkpoint', sample('cpu.pt')]]);
  assert.deepEqual(dyn.report.counts, { bound: 14, recomputed: 0, unconfirmed: 0, constants: 0 });
  const byName = new Map(dyn.report.initializers.map((i) => [i.name, i]));
  assert.deepEqual(byName.get('p_conv1_weight')!.from, ['conv1.weight']);
  assert.deepEqual(byName.get('b_bn1_running_mean')!.from, ['bn1.running_mean']);
  assert.equal(byName.get('b_bn1_running_mean')!.via, 'value');
  assert.equal(mangle('layer1.0.conv1.weight'), 'layer1_0_conv1_weight');
});

test("never on a name alone: a checkpoint whose fc.weight differs from the graph's leaves it unconfirmed and unused", () => {
  const p = plan(MODEL, [['checkpoint', fx('corrupt_fc.pt')]]);
  const fc = p.report.initializers.find((i) => i.name === 'fc.weight')!;
  assert.deepEqual([fc.kind, fc.used, fc.confirmedBy], ['unconfirmed', false, []]);
  assert.equal(fc.maxAbsDiff!['checkpoint'], 0.5);
  assert.match(fc.note!, /no checkpoint's value matches the graph's; left as the graph constant/);
  assert.ok(!p.replacements.get('checkpoint')!.has('fc.weight'));
  assert.ok(p.report.unusedTensors['checkpoint']!.includes('fc.weight'));
  // with trustNames it is used, and still reported as unconfirmed
  const t = plan(MODEL, [['checkpoint', fx('corrupt_fc.pt')]], { trustNames: true });
  assert.deepEqual(
    [t.report.initializers.find((i) => i.name === 'fc.weight')!.kind, t.replacements.get('checkpoint')!.has('fc.weight')],
    ['unconfirmed', true],
  );
});

test('against the source, the source confirms each binding and the corrupted values flow into the run', () => {
  for (const [file, init] of [
    ['corrupt_fc.pt', 'fc.weight'],
    ['corrupt_bn.pt', 'onnx::Conv_30'],
  ] as const) {
    const p = plan(MODEL, [
      ['checkpoint', fx(file)],
      ['against', sample('cpu.pt')],
    ]);
    const b = p.report.initializers.find((i) => i.name === init)!;
    assert.deepEqual(b.confirmedBy, ['against'], file);
    assert.ok(b.maxAbsDiff!['checkpoint']! > 0.01, file);
    assert.equal(b.used, true);
    const mine = p.replacements.get('checkpoint')!.get(init)!;
    const theirs = p.replacements.get('against')!.get(init)!;
    assert.notDeepEqual(Buffer.from(mine), Buffer.from(theirs));
  }
});

test('a checkpoint that lacks a tensor the graph uses is reported per run', async () => {
  const out = join(tempDir(), 'no-fc-bias.pt');
  await convertFile(sample('cpu.pt'), { rules: { ...NO_RULES, exclude: '^fc\\.bias$' }, output: out, force: true, syncFolder: false });
  const p = plan(MODEL, [
    ['checkpoint', out],
    ['against', sample('cpu.pt')],
  ]);
  assert.deepEqual(p.report.missingTensors, { checkpoint: ['fc.bias: the checkpoint has no fc.bias'], against: [] });
  assert.ok(!p.replacements.get('checkpoint')!.has('fc.bias'));
});

test('a checkpoint of another model reaches nothing: same names with other shapes are reported, never used', () => {
  const other = new URL('../../fixtures/torch/cpu_state_dict.pt', import.meta.url).pathname; // SmallCNN: fc.weight is [3, 32]
  const p = plan(MODEL, [['checkpoint', other]]);
  assert.deepEqual(p.report.counts, { bound: 0, recomputed: 0, unconfirmed: 2, constants: 4 });
  const fc = p.report.initializers.find((i) => i.name === 'fc.weight')!;
  assert.equal(fc.used, false);
  assert.match(fc.note!, /^checkpoint fc\.weight is \[\d+, \d+\], the graph wants \[10, 256\]$/);
  assert.equal(p.report.coverage, 0);
  assert.equal(p.replacements.get('checkpoint')!.size, 0);
});

test("a Conv node's scope name gives the module path torch's export took it from", () => {
  assert.equal(scopePath('/conv1/Conv'), 'conv1');
  assert.equal(scopePath('/layer1/layer1.0/conv1/Conv'), 'layer1.0.conv1');
  assert.equal(scopePath('/layer1/layer1.1/Conv'), 'layer1.1');
  assert.equal(scopePath('Conv_0'), null);
});

test('nested modules, convolutions without bias and a BatchNorm eps of 1e-3 are recomputed bit for bit', () => {
  const p = plan(fx('nested.onnx'), [['checkpoint', fx('nested.pt')]]);
  assert.deepEqual(p.report.counts, { bound: 2, recomputed: 4, unconfirmed: 0, constants: 0 });
  // eps is not in a state dict: 1e-5 (torch's default) is tried first, then 1e-3
  assert.deepEqual(p.report.bnEps, { 'layer1.0.bn1': 1e-3, 'layer1.2': 1e-5 });
  const folded = p.report.initializers.filter((i) => i.kind === 'recomputed');
  assert.deepEqual(
    folded.map((i) => i.from![0]),
    ['layer1.0.conv1.weight', 'layer1.0.conv1.weight', 'layer1.1.weight', 'layer1.1.weight'],
  );
  assert.ok(
    folded.every((i) => i.maxAbsDiff!['checkpoint'] === 0),
    'b = beta - mean * scale, in float32, as torch computes it',
  );
  // told the wrong epsilon, the search still finds the one that reproduces the graph
  assert.deepEqual(plan(fx('nested.onnx'), [['checkpoint', fx('nested.pt')]], { bnEps: 0.1 }).report.counts.recomputed, 4);
});
