// Every torch fixture × every preset, converted by the built CLI and then loaded by REAL PyTorch
// 1.13: weights_only where the source allows it, bit-exact tensors against the source as torch
// reads it, strict loads into SmallCNN / DataParallel(SmallCNN), the storage tags torch sees,
// non-tensor content, and `_metadata` equal to what torch itself writes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ConversionReport } from '../../shared/convert.ts';
import {
  CORES,
  TORCH_FIXTURES,
  checkWithTorch,
  mapLimit,
  oneErrorLine,
  removeTemps,
  reportOf,
  runCliAsync,
  tempDir,
  torchSkipReason,
  torchVersion,
  type CliRun,
  type PyResult,
} from './helpers.ts';

const skip = torchSkipReason();

interface Preset {
  name: string;
  args: string[];
  gpu?: number;
}
const PRESETS: Preset[] = [
  { name: 'cpu', args: ['--preset', 'cpu'] },
  { name: 'gpu', args: ['--preset', 'gpu'], gpu: 0 },
  { name: 'gpu:1', args: ['--preset', 'gpu:1'], gpu: 1 },
  { name: 'dp', args: ['--preset', 'dp'] },
  { name: 'ddp', args: ['--preset', 'ddp', '--world-size', '2'] },
];
const presetKind = (p: Preset): string => p.name.split(':')[0]!;
const expectedTag = (p: Preset, rank: number): string =>
  p.name === 'cpu' ? 'cpu' : p.name.startsWith('gpu') ? `cuda:${p.gpu}` : p.name === 'dp' ? 'cuda:0' : `cuda:${rank}`;

/** Fixtures relative to test/fixtures/torch, including the per-rank folders. */
const FIXTURE_FILES: string[] = skip
  ? []
  : readdirSync(TORCH_FIXTURES)
      .flatMap((n) => {
        const full = join(TORCH_FIXTURES, n);
        if (statSync(full).isDirectory())
          return readdirSync(full)
            .filter((f) => f.endsWith('.pt'))
            .map((f) => `${n}/${f}`);
        return n.endsWith('.pt') ? [n] : [];
      })
      .sort();

const MALICIOUS = new Set(['malicious.pt', 'malicious_legacy.pt']);
const TORCHSCRIPT = 'torchscript.pt';
const WHOLE = new Set(['whole_model.pt', 'whole_model_dp.pt']);
/** Where the SmallCNN state dict sits ([] = the root); whole models are pickled modules. */
const MODEL_AT: Record<string, (string | number)[]> = {
  'cpu_state_dict.pt': [],
  'dp_state_dict.pt': [],
  'cuda_mixed.pt': [],
  'cuda3_single.pt': [],
  'compiled_prefix.pt': [],
  'compiled_dp_prefix.pt': [],
  'legacy_state_dict.pt': [],
  'ddp_gloo/rank0.pt': [],
  'ddp_gloo/rank1.pt': [],
  'ddp_cuda_tagged/rank0.pt': [],
  'ddp_cuda_tagged/rank1.pt': [],
  'training_checkpoint.pt': ['model'],
  'legacy_training_checkpoint.pt': ['model'],
};
/** Whether torch 1.13's weights_only unpickler takes the SOURCE (numpy scalars, modules, sets, complex: no). */
const WEIGHTS_ONLY_SOURCE: Record<string, boolean> = {
  'cpu_state_dict.pt': true,
  'dp_state_dict.pt': true,
  'cuda_mixed.pt': true,
  'cuda3_single.pt': true,
  'compiled_prefix.pt': true,
  'compiled_dp_prefix.pt': true,
  'legacy_state_dict.pt': true,
  'ddp_gloo/rank0.pt': true,
  'ddp_gloo/rank1.pt': true,
  'ddp_cuda_tagged/rank0.pt': true,
  'ddp_cuda_tagged/rank1.pt': true,
  'dtypes.pt': true,
  'views.pt': true,
  'training_checkpoint.pt': false,
  'legacy_training_checkpoint.pt': false,
  'nested_containers.pt': false,
  'whole_model.pt': false,
  'whole_model_dp.pt': false,
};

interface Job {
  id: string;
  fixture: string;
  preset: Preset;
  extra: string[];
  output: string;
  run?: CliRun;
  report?: ConversionReport;
}
const out = skip ? '' : tempDir('presets');
const jobs: Job[] = [];
const addJob = (fixture: string, preset: Preset, extra: string[] = []): Job => {
  const stem = `${fixture.replace(/\//g, '_').replace(/\.pt$/, '')}.${preset.name.replace(':', '')}${extra.map((e) => e.replace(/^--/, '.')).join('')}`;
  const j: Job = { id: `${fixture} → ${preset.name}${extra.length ? ' ' + extra.join(' ') : ''}`, fixture, preset, extra, output: join(out, `${stem}.pth`) };
  jobs.push(j);
  return j;
};
/** Sources whose non-tensor content torch.load(weights_only=True) refuses (numpy scalars, modules, sets): converted with --keep-objects so that it is carried unchanged. */
const KEEP_OBJECTS = new Set(['training_checkpoint.pt', 'legacy_training_checkpoint.pt', 'nested_containers.pt', 'whole_model.pt', 'whole_model_dp.pt']);
const defaultExtra = (fixture: string): string[] => (KEEP_OBJECTS.has(fixture) ? ['--keep-objects'] : []);
const job = (fixture: string, preset: Preset, extra: string[] = defaultExtra(fixture)): Job =>
  jobs.find((j) => j.fixture === fixture && j.preset === preset && j.extra.join() === extra.join())!;
for (const f of FIXTURE_FILES) for (const p of PRESETS) addJob(f, p, defaultExtra(f));
for (const f of WHOLE) for (const p of PRESETS) addJob(f, p, ['--export-state-dict']);
addJob(TORCHSCRIPT, PRESETS[0]!, ['--export-state-dict']);
for (const p of [PRESETS[0]!, PRESETS[3]!]) addJob('malicious.pt', p, ['--unwrap']);

let results = new Map<string, PyResult>();

before(async () => {
  if (skip) return;
  console.log(`# torch ${torchVersion()}; ${jobs.length} conversions in ${out}`);
  await mapLimit(jobs, CORES + 1, async (j) => {
    j.run = await runCliAsync(['convert', join(TORCH_FIXTURES, j.fixture), ...j.preset.args, ...j.extra, '-o', j.output, '--json']);
    if (j.run.code === 0) j.report = reportOf(j.run.stdout);
  });
  const checks: unknown[] = [];
  for (const j of jobs) {
    if (!j.report) continue;
    const outputs = j.report.outputs.map((o) => ({ file: o.file, rank: o.rank ?? null }));
    if (MALICIOUS.has(j.fixture)) {
      // never unpickled: only an --unwrap output (a plain state dict) is loaded, weights_only,
      // and compared with the hashes torch recorded in malicious.expected.json
      if (j.extra.includes('--unwrap'))
        checks.push({
          id: j.id,
          kind: 'expected',
          file: outputs[0]!.file,
          expected: join(TORCH_FIXTURES, 'malicious.expected.json'),
          under: ['model'],
          preset: presetKind(j.preset),
        });
      continue;
    }
    if (j.fixture === TORCHSCRIPT && !j.extra.length) {
      checks.push({ id: j.id, kind: 'torchscript', file: outputs[0]!.file });
      continue;
    }
    if (j.fixture === TORCHSCRIPT) {
      checks.push({ id: j.id, kind: 'tags', file: outputs[0]!.file, expect: 'cpu', model: 'plain' });
      continue;
    }
    // dp/ddp export a whole pickled plain model's state dict themselves (the plan's rules say so)
    const exported = j.extra.includes('--export-state-dict') || j.report.plan.rules.exportStateDict;
    checks.push({
      id: j.id,
      kind: 'fixture',
      source: join(TORCH_FIXTURES, j.fixture),
      preset: presetKind(j.preset),
      gpu: j.preset.gpu ?? 0,
      outputs,
      state_dicts: j.report.plan.stateDicts.map((s) => s.path),
      model: exported || MODEL_AT[j.fixture] ? 'state_dict' : WHOLE.has(j.fixture) ? 'whole' : null,
      model_path: MODEL_AT[j.fixture] ?? [],
      ...(exported ? { export_state_dict: true, require_weights_only: true } : {}),
    });
  }
  results = checkWithTorch(checks);
});
after(removeTemps);

const pyOk = (j: Job): PyResult => {
  const r = results.get(j.id);
  assert.ok(r, `torch checked ${j.id}`);
  assert.deepEqual(r.errors, [], `torch 1.13 disagrees for ${j.id}:\n${r.errors.join('\n')}`);
  return r;
};

const converted = (j: Job): ConversionReport => {
  assert.ok(j.run, 'conversion ran');
  assert.equal(j.run.code, 0, `exit code for ${j.id}: ${j.run.stderr}`);
  const r = j.report!;
  assert.equal(r.verified, true, 'report says verified');
  const want = presetKind(j.preset) === 'ddp' ? [0, 1].map((k) => j.output.replace(/\.pth$/, `.rank${k}.pth`)) : [j.output];
  assert.deepEqual(
    r.outputs.map((o) => o.file),
    want,
    'output files (ddp: <stem>.rank<r><ext>)',
  );
  for (const o of r.outputs) {
    assert.equal(o.verified, true, `${o.file} verified`);
    assert.ok(existsSync(o.file), `${o.file} written`);
  }
  assert.deepEqual(
    readdirSync(out).filter((n) => n.includes('.ckpt-tmp-')),
    [],
    'no temp files left',
  );
  return r;
};

for (const fixture of FIXTURE_FILES) {
  for (const preset of PRESETS) {
    const j = job(fixture, preset);
    if (MALICIOUS.has(fixture)) {
      // never unpickled here: the converter must refuse to carry the payload (or at least leave
      // an output `ckpt inspect` still calls dangerous)
      test(`${j.id}: refused with exit 2 and one line naming the call; nothing written`, { skip: skip ?? false }, async () => {
        assert.ok(j.run);
        if (j.run.code === 2) {
          assert.match(oneErrorLine(j.run.stderr), /^ckpt: error: .*the source is dangerous \(posix\.system\(.*\)\); nothing was written; add --unwrap/);
          assert.ok(!existsSync(j.output) && !existsSync(j.output.replace(/\.pth$/, '.rank0.pth')), 'nothing written');
          return;
        }
        const r = converted(j);
        for (const o of r.outputs) {
          const ins = await runCliAsync(['inspect', o.file, '--json']);
          assert.equal(JSON.parse(ins.stdout).security.verdict, 'dangerous', `${basename(o.file)} is at least flagged dangerous`);
        }
        assert.fail(`converted with exit ${j.run.code}: the payload was carried into ${r.outputs.map((o) => o.file).join(', ')}`);
      });
      continue;
    }
    if (fixture === TORCHSCRIPT) {
      test(`${j.id}: refused with exit 2 (load TorchScript with torch.jit.load), or torch can load the output`, { skip: skip ?? false }, () => {
        assert.ok(j.run);
        if (j.run.code === 2) {
          assert.match(oneErrorLine(j.run.stderr), /TorchScript.*torch\.jit\.load/);
          assert.ok(!existsSync(j.output) && !existsSync(j.output.replace(/\.pth$/, '.rank0.pth')), 'nothing written');
          return;
        }
        converted(j);
        pyOk(j);
      });
      continue;
    }
    if (WHOLE.has(fixture) && (preset.name === 'dp' || preset.name === 'ddp')) {
      // Issue 14 changed these from a refusal: a pickled DataParallel is already wrapped and is only
      // retagged (ddp: one file per rank); a pickled plain model is written as its state dict with
      // 'module.' keys, and the plan says so.
      test(`${j.id}: ${fixture === 'whole_model_dp.pt' ? 'kept as the pickled DataParallel, only retagged' : "written as its state dict with 'module.' keys, and said so"}; loads in torch 1.13`, {
        skip: skip ?? false,
      }, () => {
        const report = converted(j);
        const r = pyOk(j);
        const outs = r.info['outputs'] as any[];
        assert.equal(outs.length, preset.name === 'ddp' ? 2 : 1);
        for (const [k, o] of outs.entries()) {
          assert.deepEqual(Object.keys(o.storage_tags), [expectedTag(preset, o.rank ?? k)]);
          assert.equal(o.tensors_compared, 16);
          if (fixture === 'whole_model_dp.pt') assert.match(o.loaded_into, /^DataParallel\(SmallCNN\) \(whole module\)/);
          else assert.equal(o.loaded_into, 'DataParallel(SmallCNN)');
        }
        if (fixture === 'whole_model.pt')
          assert.ok(
            report.plan.warnings.some((w) => /state dict is written, with 'module\.' keys/.test(w)),
            report.plan.warnings.join('; '),
          );
        else assert.match(report.plan.rootChange ?? '', /kept as it is \(already wrapped\); only device tags change/);
      });
      continue;
    }
    test(`${j.id}: loads in torch 1.13 and matches the source`, { skip: skip ?? false }, () => {
      const report = converted(j);
      const r = pyOk(j);
      const wo = WEIGHTS_ONLY_SOURCE[fixture];
      if (wo !== undefined) assert.equal(r.info['source_weights_only'], wo, 'whether torch 1.13 loads the source weights_only');
      const outs = r.info['outputs'] as any[];
      assert.equal(outs.length, report.outputs.length);
      for (const [k, o] of outs.entries()) {
        const tag = expectedTag(preset, o.rank ?? k);
        assert.equal(o.expected_tag, tag);
        // every storage tag torch passes to map_location, and every tensor reached through them
        assert.deepEqual(Object.keys(o.storage_tags), [tag], `storage tags ${JSON.stringify(o.storage_tags)}`);
        assert.deepEqual(Object.keys(o.tensor_tags), [tag], `tensor tags ${JSON.stringify(o.tensor_tags)}`);
        assert.equal(o.untagged_tensors, 0);
        assert.ok(o.tensors_compared > 0, 'tensors were compared');
        if (preset.name === 'cpu') assert.equal(o.plain_load, wo ? 'weights_only' : 'full', 'torch.load with no map_location');
        if (MODEL_AT[fixture]) {
          assert.equal(o.loaded_into, preset.name === 'cpu' || preset.name.startsWith('gpu') ? 'SmallCNN' : 'DataParallel(SmallCNN)');
          assert.equal(o.metadata_equals_torch, true, '_metadata equals what torch writes for this wrapper');
        }
        if (WHOLE.has(fixture)) assert.match(o.loaded_into, /^SmallCNN/);
        if (/training_checkpoint/.test(fixture)) {
          assert.deepEqual(o.scalars, {
            epoch: { type: 'builtins.int', repr: '7' },
            best_acc: { type: 'numpy.float64', repr: '0.9375' },
            lr: { type: 'builtins.float', repr: '0.001' },
          });
          // 10 parameters × (step, exp_avg, exp_avg_sq), all carried to the preset's device
          assert.deepEqual(o.optimizer_tensor_tags, { [tag]: 30 });
        }
      }
    });
  }
}

for (const fixture of WHOLE) {
  for (const preset of PRESETS) {
    const j = job(fixture, preset, ['--export-state-dict']);
    test(`${j.id}: a plain state dict that loads weights_only into the right wrapper`, { skip: skip ?? false }, () => {
      converted(j);
      const r = pyOk(j);
      for (const o of r.info['outputs'] as any[]) {
        assert.equal(o.weights_only_load, true);
        assert.equal(o.loaded_into, presetKind(preset) === 'cpu' || presetKind(preset) === 'gpu' ? 'SmallCNN' : 'DataParallel(SmallCNN)');
        assert.equal(o.tensors_compared, 16);
        assert.equal(o.metadata_equals_torch, true, "_metadata equals what torch's state_dict() gives");
      }
    });
  }
  test(`${fixture} → cpu --export-state-dict: plain tensors, as torch's state_dict() gives`, { skip: skip ?? false }, () => {
    const r = pyOk(job(fixture, PRESETS[0]!, ['--export-state-dict']));
    assert.equal((r.info['outputs'] as any[])[0].parameters_for_tensors, 0);
  });
}

test(`${TORCHSCRIPT} → cpu --export-state-dict: refused (exit 2), or the 16 tensors loadable into SmallCNN`, { skip: skip ?? false }, () => {
  const j = job(TORCHSCRIPT, PRESETS[0]!, ['--export-state-dict']);
  assert.ok(j.run);
  if (j.run.code === 2) {
    assert.match(oneErrorLine(j.run.stderr), /TorchScript.*torch\.jit\.load/);
    assert.ok(!existsSync(j.output));
    return;
  }
  const report = converted(j);
  assert.equal(report.outputs[0]!.tensors, 16, `written tensors (plan: ${report.plan.tensors.kept})`);
  pyOk(j);
});

for (const preset of [PRESETS[0]!, PRESETS[3]!]) {
  test(`malicious.pt → ${preset.name} --unwrap: only the state dict, loadable weights_only, tensors as torch saved them`, { skip: skip ?? false }, () => {
    const j = job('malicious.pt', preset, ['--unwrap']);
    converted(j);
    const r = pyOk(j);
    assert.equal(r.info['tensors_compared'], 2);
    assert.deepEqual(r.info['keys'], preset.name === 'dp' ? ['module.fc.weight', 'module.fc.bias'] : ['fc.weight', 'fc.bias']);
    assert.deepEqual(Object.keys(r.info['storage_tags']), [expectedTag(preset, 0)]);
  });
}

test('dp_state_dict → cpu: _metadata equals the real cpu_state_dict.pt torch wrote', { skip: skip ?? false }, () => {
  const r = pyOk(job('dp_state_dict.pt', PRESETS[0]!));
  assert.equal((r.info['outputs'] as any[])[0].metadata_equals_torch, true);
});

test('cpu_state_dict → dp: _metadata equals the real dp_state_dict.pt torch wrote', { skip: skip ?? false }, () => {
  const r = pyOk(job('cpu_state_dict.pt', PRESETS[3]!));
  assert.equal((r.info['outputs'] as any[])[0].metadata_equals_torch, true);
});
