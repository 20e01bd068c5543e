// Whole verifications on the sample workspace: onnxruntime against torch's own measurement, every
// layout converted to cpu against its source, corrupted and half-precision checkpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { NO_RULES } from '../../../shared/presets.ts';
import type { VerifyOptions } from '../../../shared/verify.ts';
import { convertFile } from '../../../main/convert/convert-file.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { runVerify } from '../../../main/verify/run-verify.ts';
import { fx, MODEL, NPZ, sample, tempDir, TORCH } from './helpers.ts';

const verify = (o: Partial<VerifyOptions> & { checkpoint: string }) => runVerify({ model: MODEL, data: NPZ, device: 'cpu', ...o });

test("onnxruntime's accuracy on the source checkpoint equals torch's, sample for sample", async () => {
  const r = await verify({ checkpoint: sample('cpu.pt') });
  const run = r.runs[0]!;
  assert.equal(run.metrics.samples, TORCH.samples);
  assert.deepEqual(run.metrics.predictions, TORCH.predictions);
  assert.equal(Math.fround(run.metrics.top1), TORCH.accuracy); // torch computed the mean in float32
  assert.equal(run.metrics.correct, 356);
  assert.equal(r.verdict, 'PASS');
  assert.equal(r.provesNothing, false);
  assert.equal(r.runs[1]!.label, 'graph');
  assert.deepEqual(r.reasons, ["logits are bit-identical to the graph's own weights on all 360 samples"]);
  // per-class numbers and the confusion matrix add up
  assert.equal(
    run.metrics.perClass.reduce((a, c) => a + c.correct, 0),
    356,
  );
  assert.equal(
    run.metrics.confusion.flat().reduce((a, b) => a + b, 0),
    360,
  );
  assert.equal(
    run.metrics.confusion.reduce((a, row, i) => a + row[i]!, 0),
    356,
  );
  assert.equal(run.metrics.top5, 1);
  assert.match(run.metrics.logitsSha256, /^[0-9a-f]{64}$/);
});

test('every sample layout converted to cpu verifies as PASS against its source', async () => {
  const dir = tempDir();
  const layouts = ['cpu.pt', 'dp.pt', 'cuda1.pt', 'ddp/rank0.pt', 'ddp/rank1.pt', 'checkpoint.pth.tar', 'legacy_cpu.pt', 'whole_model_dp.pt'];
  let sha = '';
  for (const f of layouts) {
    const out = join(dir, f.replace('/', '-') + '.cpu.pt');
    // the whole pickled model carries its classes only with the explicit trust flag (issue 11)
    const keepObjects = f.startsWith('whole_model');
    await convertFile(sample(f), { rules: { ...NO_RULES, preset: { name: 'cpu' }, keepObjects }, output: out, force: true, syncFolder: false });
    const r = await verify({ checkpoint: out, against: sample(f) });
    assert.equal(r.verdict, 'PASS', `${f}: ${r.reasons.join('; ')}`);
    assert.equal(r.comparison.bitIdentical, true);
    assert.deepEqual(r.binding.counts, { bound: 2, recomputed: 4, unconfirmed: 0, constants: 0 }, f);
    assert.deepEqual(r.runs[0]!.metrics.predictions, TORCH.predictions, f);
    sha ||= r.runs[0]!.metrics.logitsSha256;
    assert.equal(r.runs[0]!.metrics.logitsSha256, sha, `${f}: the same weights give the same logits`);
  }
});

test('a checkpoint with one tensor perturbed FAILs against its source, copied or folded', async () => {
  for (const f of ['corrupt_fc.pt', 'corrupt_bn.pt']) {
    const r = await verify({ checkpoint: fx(f), against: sample('cpu.pt') });
    assert.equal(r.verdict, 'FAIL', f);
    assert.equal(r.comparison.bitIdentical, false);
    assert.ok(r.comparison.maxAbsLogitDiff > 0.5, `${f}: ${r.comparison.maxAbsLogitDiff}`);
    assert.ok(r.comparison.outsideTolerance > 0);
    assert.match(r.reasons[0]!, /predictions differ from the source checkpoint|logits are outside/);
  }
  // without --against, the graph is the reference: the checkpoint does not reproduce it
  const alone = await verify({ checkpoint: fx('corrupt_fc.pt') });
  assert.equal(alone.verdict, 'FAIL');
  assert.match(alone.reasons[0]!, /^1 initializer of the graph differs from the checkpoint tensor of the same name and shape: fc\.weight \(max \|Δ\| 0\.500\)/);
});

test('a float16 copy: same predictions, logits within a loose tolerance → WARN; FAIL at the default one', async () => {
  const strict = await verify({ checkpoint: fx('half.pt'), against: sample('cpu.pt') });
  assert.equal(strict.verdict, 'FAIL');
  assert.equal(strict.comparison.identicalPredictions, 1);
  const loose = await verify({ checkpoint: fx('half.pt'), against: sample('cpu.pt'), atol: 0.05, rtol: 0.01 });
  assert.equal(loose.verdict, 'WARN');
  assert.equal(loose.comparison.accuracyDelta, 0);
  assert.ok(loose.comparison.maxAbsLogitDiff > 1e-4 && loose.comparison.maxAbsLogitDiff < 0.05);
  assert.ok(loose.comparison.maxRelDiff > 0); // large only where a logit is near zero
  assert.equal(
    loose.comparison.diffHistogram.decades.reduce((a, d) => a + d.count, 0),
    360,
  );
  // the float16 values were cast to the graph's float32; the source confirmed every binding
  assert.ok(loose.binding.initializers.every((i) => i.confirmedBy!.includes('against') && !i.confirmedBy!.includes('checkpoint')));
});

test('the accuracy a training checkpoint recorded (numpy best_acc) is shown beside the measured one', async () => {
  const r = await verify({ checkpoint: sample('checkpoint.pth.tar') });
  assert.deepEqual(r.runs[0]!.recorded, [{ path: 'best_acc', value: TORCH.accuracy, fraction: TORCH.accuracy }]);
  assert.equal(Math.fround(r.runs[0]!.metrics.top1), TORCH.accuracy);
});

test('external data, an unfolded export and torch.export names all run the checkpoint to the same logits', async () => {
  const base = await verify({ checkpoint: sample('cpu.pt') });
  const ext = await verify({ checkpoint: sample('dp.pt'), model: fx('external/model.onnx') });
  assert.equal(ext.verdict, 'PASS');
  assert.deepEqual(ext.model.externalData, ['model.onnx.data']);
  assert.equal(ext.runs[0]!.metrics.logitsSha256, base.runs[0]!.metrics.logitsSha256);
  for (const g of ['unfolded.onnx', 'dynamo-names.onnx']) {
    const r = await verify({ checkpoint: sample('whole_model_dp.pt'), model: fx(g) });
    assert.equal(r.verdict, 'PASS', g);
    assert.equal(r.binding.counts.bound, 14);
    // BatchNorm evaluated by onnxruntime instead of folded by torch: same predictions as torch
    assert.deepEqual(r.runs[0]!.metrics.predictions, TORCH.predictions, g);
  }
});

test('a checkpoint that never reaches the graph is marked as proving nothing', async () => {
  const other = new URL('../../fixtures/torch/cpu_state_dict.pt', import.meta.url).pathname;
  const r = await verify({ checkpoint: other });
  assert.equal(r.provesNothing, true);
  assert.equal(r.verdict, 'FAIL');
  assert.ok(r.reasons.some((x) => /no checkpoint tensor reached the graph/.test(x)));
  assert.equal(r.binding.coverage, 0);
});

test('a checkpoint missing a tensor the graph uses FAILs even against an identical source', async () => {
  const out = join(tempDir(), 'no-fc.pt');
  await convertFile(sample('dp.pt'), { rules: { ...NO_RULES, preset: { name: 'cpu' }, exclude: '^fc\\.bias$' }, output: out, force: true, syncFolder: false });
  const r = await verify({ checkpoint: out, against: sample('dp.pt') });
  assert.equal(r.verdict, 'FAIL');
  assert.ok(
    r.reasons.some((x) => x.includes('lacks 1 tensor the graph uses (fc.bias: the checkpoint has no fc.bias)')),
    r.reasons.join('\n'),
  );
});

test('CUDA falls back to the CPU with the reason when its provider does not load', async () => {
  const r = await verify({ checkpoint: sample('cpu.pt'), device: 'cuda:1', limit: 10 });
  assert.equal(r.provider.requested, 'cuda:1');
  if (r.provider.used === 'cpu') {
    // CI and this machine: onnxruntime-node ships no CUDA provider unless installed with ONNXRUNTIME_NODE_INSTALL=cuda12
    assert.match(r.provider.fallback!, /CUDA/);
    assert.equal(r.provider.deviceId, null);
  } else {
    assert.deepEqual([r.provider.deviceId, r.provider.fallback], [1, null]);
  }
  assert.equal(r.verdict, 'PASS');
  const cpu = await verify({ checkpoint: sample('cpu.pt'), device: 'cpu', limit: 10 });
  assert.deepEqual([cpu.provider.used, cpu.provider.fallback], ['cpu', null]);
  await assert.rejects(
    verify({ checkpoint: sample('cpu.pt'), device: 'tpu' }),
    (e: CheckpointError) => e.kind === 'usage' && /--device takes cpu, cuda, cuda:N or auto/.test(e.message),
  );
});

test('batching does not change the logits; a graph with a fixed batch of 1 runs one sample at a time', async () => {
  const a = await verify({ checkpoint: sample('cpu.pt'), batchSize: 7 });
  const b = await verify({ checkpoint: sample('cpu.pt'), batchSize: 360 });
  assert.deepEqual(a.runs[0]!.metrics.predictions, b.runs[0]!.metrics.predictions);
  assert.equal(a.batchSize, 7);
  assert.equal(a.runs[0]!.metrics.top1, b.runs[0]!.metrics.top1);
  const one = await verify({ checkpoint: sample('cpu.pt'), model: fx('fixed-batch.onnx'), batchSize: 64 });
  assert.deepEqual(one.model.input.shape, [1, 1, 8, 8]);
  assert.equal(one.batchSize, 1);
  assert.equal(one.verdict, 'PASS');
  assert.deepEqual(one.runs[0]!.metrics.predictions, TORCH.predictions);
});

test('progress is reported per batch and cancellation stops between batches', async () => {
  const seen: number[] = [];
  await runVerify(
    { model: MODEL, data: NPZ, device: 'cpu', checkpoint: sample('cpu.pt'), batchSize: 100 },
    { onProgress: (p) => p.total && seen.push(p.done) },
  );
  assert.deepEqual(seen, [0, 100, 200, 300, 360]);
  let batches = 0;
  await assert.rejects(
    runVerify(
      { model: MODEL, data: NPZ, device: 'cpu', checkpoint: sample('cpu.pt'), batchSize: 50 },
      {
        onProgress: (p) => {
          if (p.done > 0) batches++;
        },
        cancelled: () => batches >= 2,
      },
    ),
    (e: CheckpointError) => e.kind === 'cancelled' && e.message === 'verification cancelled after 100 of 360 samples',
  );
});

test('bad inputs are one-line errors of the right kind', async () => {
  const cases: [Partial<VerifyOptions> & { checkpoint: string }, string, RegExp][] = [
    [{ checkpoint: sample('nope.pt') }, 'io', /the checkpoint: .*nope\.pt: no such file/],
    [{ checkpoint: sample('cpu.pt'), model: sample('cpu.pt') }, 'not-a-checkpoint', /cpu\.pt/],
    [{ checkpoint: sample('cpu.pt'), data: sample('README.md') }, 'usage', /not a test set verify reads/],
    [{ checkpoint: sample('cpu.pt'), data: sample('accuracy.json') }, 'usage', /not a test set/],
    [{ checkpoint: sample('cpu.pt'), batchSize: 0 }, 'usage', /--batch-size/],
    [{ checkpoint: sample('cpu.pt'), preprocess: { mean: [0, 0] } }, 'usage', /--mean has 2 values; give 1 or 1/],
    [{ checkpoint: fx('expected.json') }, 'not-a-checkpoint', /expected\.json/],
  ];
  for (const [o, kind, re] of cases) {
    await assert.rejects(verify(o), (e: CheckpointError) => {
      assert.ok(e instanceof CheckpointError, String(e));
      assert.equal(e.kind, kind, e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  }
});
