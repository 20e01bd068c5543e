// Graphs exported by torch 2.x with both exporters (dynamo=True and False) and constant folding on
// and off (test/fixtures/verify/generate_torch2_onnx.py): the binding follows the graph, never the
// names the dynamo exporter leaves on folded values, and a cpu conversion verifies PASS against
// its DataParallel source with every parameter reaching the graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NO_RULES } from '../../../shared/presets.ts';
import { convertFile } from '../../../main/convert/convert-file.ts';
import { planBindings } from '../../../main/verify/bind.ts';
import { openWeights } from '../../../main/verify/checkpoint-weights.ts';
import { loadOnnxModel } from '../../../main/formats/onnx/onnx-model.ts';
import { runVerify } from '../../../main/verify/run-verify.ts';
import { fx, NPZ, tempDir } from './helpers.ts';

const T2 = (p: string): string => fx(join('torch2', p));
const EXPECTED = JSON.parse(readFileSync(T2('expected.json'), 'utf8')) as {
  torch: string;
  models: Record<string, { accuracy: number; predictions: number[]; perturbed: { key: string } }>;
};
const EXPORTS = ['dynamo-cf', 'dynamo-nocf', 'legacy-cf', 'legacy-nocf'];
/** conv3d takes a volume the test-set readers do not make: binding only */
const RUNNABLE = ['rescnn', 'bnmlp', 'conv1d', 'constfold', 'convt'];

function bind(model: string, exp: string, file = 'dp.pt') {
  const w = openWeights(T2(`${model}/${file}`));
  try {
    return planBindings(loadOnnxModel(T2(`${model}/${exp}.onnx`)), [{ label: 'checkpoint', weights: w }]).report;
  } finally {
    w.close();
  }
}

test('every export of every model binds 100% of the graph and of the checkpoint: bound or recomputed, nothing unconfirmed', () => {
  for (const model of Object.keys(EXPECTED.models)) {
    for (const exp of EXPORTS) {
      const r = bind(model, exp);
      const what = `${model}/${exp}`;
      assert.equal(r.coverage, 1, what);
      assert.equal(r.parameterCoverage!['checkpoint'], 1, what);
      assert.equal(r.counts.unconfirmed, 0, what);
      assert.ok(
        r.initializers.every((i) => i.kind !== 'constant' || !['float32', 'float64'].includes(i.dtype)),
        `${what}: a float constant is left`,
      );
      assert.ok(
        r.unreached!['checkpoint']!.every((u) => u.key.endsWith('num_batches_tracked')),
        what,
      );
      assert.ok(
        r.initializers.filter((i) => i.used).every((i) => i.maxAbsDiff!['checkpoint'] === 0),
        `${what}: recomputed bit for bit`,
      );
    }
  }
});

test("dynamo's folded values under the parameters' own names are recomputed, never bound by name", () => {
  const r = bind('rescnn', 'dynamo-cf');
  const by = new Map(r.initializers.map((i) => [i.name, i]));
  assert.deepEqual([by.get('conv1.weight')!.kind, by.get('conv1.weight')!.via], ['recomputed', 'conv+bn fold']);
  assert.deepEqual(by.get('conv2.weight_bias')!.from, ['conv2.weight', 'bn2.weight', 'bn2.bias', 'bn2.running_mean', 'bn2.running_var']);
  assert.equal(r.bnEps['bn3'], 1e-3, 'bn3 was built with eps=1e-3');
  const mlp = new Map(bind('bnmlp', 'dynamo-cf').initializers.map((i) => [i.name, i]));
  assert.deepEqual([mlp.get('fc2.weight')!.kind, mlp.get('fc2.weight')!.via], ['recomputed', 'linear+bn fold']);
  const c1 = new Map(bind('conv1d', 'dynamo-cf').initializers.map((i) => [i.name, i]));
  assert.deepEqual([c1.get('val_6')!.via, c1.get('val_6')!.from], ['transposed', ['mix.weight']]);
  assert.deepEqual(bind('conv3d', 'dynamo-cf').counts, { bound: 2, recomputed: 2, unconfirmed: 0, constants: 1 });
});

test("ConvTranspose+BN: dynamo's fold (output channels on the weight's axis 1, per group) is recomputed; the legacy exporter keeps the BatchNormalization, bound as it is", () => {
  const dyn = new Map(bind('convt', 'dynamo-cf').initializers.map((i) => [i.name, i]));
  // up1 has groups=2 and no bias (onnxscript names the bias it makes up1.weight_bias); up2 a bias and eps=1e-3
  assert.deepEqual(
    ['up1.weight', 'up1.weight_bias', 'up2.weight', 'up2.bias'].map((n) => [n, dyn.get(n)!.kind, dyn.get(n)!.via, dyn.get(n)!.from]),
    [
      ['up1.weight', 'recomputed', 'conv-transpose+bn fold', ['up1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var']],
      ['up1.weight_bias', 'recomputed', 'conv-transpose+bn fold', ['up1.weight', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var']],
      ['up2.weight', 'recomputed', 'conv-transpose+bn fold', ['up2.weight', 'up2.bias', 'bn2.weight', 'bn2.bias', 'bn2.running_mean', 'bn2.running_var']],
      ['up2.bias', 'recomputed', 'conv-transpose+bn fold', ['up2.weight', 'up2.bias', 'bn2.weight', 'bn2.bias', 'bn2.running_mean', 'bn2.running_var']],
    ],
  );
  assert.equal(bind('convt', 'dynamo-cf').bnEps['bn2'], 1e-3);
  for (const exp of ['legacy-cf', 'legacy-nocf']) {
    const legacy = bind('convt', exp);
    assert.equal(legacy.counts.recomputed, 0, `${exp}: nothing folded`);
    const bn = legacy.initializers.find((i) => i.name === 'bn1.running_var')!;
    assert.deepEqual([bn.kind, bn.via, bn.from], ['bound', 'value', ['bn1.running_var']], exp);
  }
});

test('constant-folded reshapes, scalings, transposes and casts are recomputed from the checkpoint', () => {
  for (const [exp, names] of [
    ['dynamo-cf', ['view', 't', 't_1', '_to_copy_2']],
    ['legacy-cf', ['onnx::Add_23', 'onnx::MatMul_25', 'onnx::MatMul_27', 'onnx::Add_28']],
  ] as const) {
    const by = new Map(bind('constfold', exp).initializers.map((i) => [i.name, i]));
    assert.deepEqual(
      names.map((n) => [by.get(n)!.from, by.get(n)!.via]),
      [
        [['offset'], 'reshaped to [1, 1, 8, 8]'],
        [['fc1.weight'], 'transposed, scaled ×0.5'],
        [['fc2.weight'], 'transposed, cast to float64'],
        [['fc2.bias'], 'cast to float64'],
      ],
      exp,
    );
  }
});

test("a checkpoint with one perturbed tensor leaves the graph's value unconfirmed, and says which tensor and why", () => {
  const r = bind('rescnn', 'dynamo-cf', 'perturbed.pt');
  assert.ok(r.counts.unconfirmed > 0 || r.coverage < 1);
  assert.ok(
    r.unreached!['checkpoint']!.some((u) => u.key === 'bn3.running_var' && /differ|other values/.test(u.reason)),
    JSON.stringify(r.unreached),
  );
});

test("onnxruntime's predictions equal torch's sample for sample; cpu conversions PASS against the DP source; a perturbed tensor does not", async () => {
  const dir = tempDir();
  for (const model of RUNNABLE) {
    const cpu = join(dir, `${model}.cpu.pt`);
    await convertFile(T2(`${model}/dp.pt`), { rules: { ...NO_RULES, preset: { name: 'cpu' } }, output: cpu, force: true, syncFolder: false });
    const want = EXPECTED.models[model]!;
    for (const exp of EXPORTS) {
      const what = `${model}/${exp}`;
      const r = await runVerify({ model: T2(`${model}/${exp}.onnx`), data: NPZ, checkpoint: cpu, against: T2(`${model}/dp.pt`), device: 'cpu' });
      assert.deepEqual(r.runs[0]!.metrics.predictions, want.predictions, what);
      assert.equal(Math.fround(r.runs[0]!.metrics.top1), Math.fround(want.accuracy), what);
      assert.equal(r.verdict, 'PASS', `${what}: ${r.reasons.join('; ')}`);
      assert.equal(r.binding.coverage, 1, what);
      assert.deepEqual(r.binding.parameterCoverage, { checkpoint: 1, against: 1 }, what);
      const bad = await runVerify({
        model: T2(`${model}/${exp}.onnx`),
        data: NPZ,
        checkpoint: T2(`${model}/perturbed.pt`),
        against: T2(`${model}/dp.pt`),
        device: 'cpu',
      });
      assert.notEqual(bad.verdict, 'PASS', `${what}: the perturbed ${want.perturbed.key} went unnoticed`);
      assert.ok(!bad.comparison.bitIdentical, what);
    }
  }
});
