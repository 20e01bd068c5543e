// `ckpt verify --model-class`: the user's model class in real torch, Debian's torch 1.13 always and
// torch 2.x where its venv exists. The same three claims as the ONNX path (torch's predictions
// sample for sample, a cpu conversion PASSes against its DP source, a perturbed tensor does not),
// and user-code failures each come back as one line, with the traceback under details, in bounded time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NO_RULES } from '../../shared/presets.ts';
import type { VerifyOptions, VerifyReport } from '../../shared/verify.ts';
import { convertFile } from '../../main/convert/convert-file.ts';
import { CheckpointError } from '../../main/errors.ts';
import { runVerify } from '../../main/verify/run-verify.ts';
import { NPZ, sample, tempDir } from '../unit/verify/helpers.ts';

const T2 = fileURLToPath(new URL('../fixtures/verify/torch2/', import.meta.url));
const MODELS = join(T2, 'models.py');
const EXPECTED = JSON.parse(readFileSync(join(T2, 'expected.json'), 'utf8')) as {
  models: Record<string, { class: string; predictions: number[]; accuracy: number }>;
};
const TORCH2 = fileURLToPath(new URL('../../.venv-torch2/bin/python', import.meta.url));
const PYTHONS: [string, string][] = [['torch 1.13', '/usr/bin/python3'], ...(existsSync(TORCH2) ? [['torch 2.x', TORCH2] as [string, string]] : [])];
if (!existsSync(TORCH2)) {
  if (process.env['CI'] === 'true') throw new Error('CI needs the torch 2.x venv (test/fixtures/setup-torch2.sh)');
  console.log('# torch 2.x venv absent (.venv-torch2): the runner is tested with torch 1.13 only');
}
/** the longest a failing run may take: starting Python and importing torch dominate */
const FAILURE_BOUND_MS = 60_000;

const verify = (python: string, o: Partial<VerifyOptions> & { checkpoint: string; modelClass: string }): Promise<VerifyReport> =>
  runVerify({ model: '', data: NPZ, device: 'cpu', python, ...o });

async function failure(
  o: Partial<VerifyOptions> & { checkpoint: string; modelClass: string },
  python = '/usr/bin/python3',
): Promise<{ err: CheckpointError; ms: number }> {
  const t = performance.now();
  try {
    await verify(python, o);
  } catch (e) {
    assert.ok(e instanceof CheckpointError, String(e));
    return { err: e, ms: performance.now() - t };
  }
  assert.fail('the run should have failed');
}

for (const [name, python] of PYTHONS) {
  test(`${name}: predictions equal torch's sample for sample; cpu conversions PASS against the DP source; perturbed tensors do not`, async () => {
    const dir = tempDir();
    for (const model of name === 'torch 1.13' ? ['rescnn', 'bnmlp', 'conv1d', 'constfold'] : ['rescnn', 'bnmlp']) {
      const want = EXPECTED.models[model]!;
      const cpu = join(dir, `${model}.cpu.pt`);
      await convertFile(join(T2, model, 'dp.pt'), { rules: { ...NO_RULES, preset: { name: 'cpu' } }, output: cpu, force: true, syncFolder: false });
      const r = await verify(python, { modelClass: `${MODELS}:${want.class}`, checkpoint: cpu, against: join(T2, model, 'dp.pt') });
      assert.deepEqual(r.runs[0]!.metrics.predictions, want.predictions, model);
      assert.equal(r.verdict, 'PASS', `${model}: ${r.reasons.join('; ')}`);
      assert.deepEqual(
        r.python!.applied.map((a) => a.stripped),
        [[], ['module.']],
        'the DP source had its module. prefix removed',
      );
      assert.equal(r.python!.interpreter, python);
      assert.match(r.python!.torch, name === 'torch 1.13' ? /^1\.13/ : /^2\./);
      // start-up, loading and the loop are consecutive spans of the whole run (the loop's clock
      // starts by the runner's clock, when it had the last model in)
      const { startupSeconds, loadSeconds, loopSeconds } = r.python!;
      assert.ok(loadSeconds > 0 && loopSeconds > 0, `${loadSeconds} ${loopSeconds}`);
      assert.ok(startupSeconds + loadSeconds + loopSeconds <= r.seconds, `${startupSeconds} + ${loadSeconds} + ${loopSeconds} > ${r.seconds}`);
      const bad = await verify(python, {
        modelClass: `${MODELS}:${want.class}`,
        checkpoint: join(T2, model, 'perturbed.pt'),
        against: join(T2, model, 'dp.pt'),
      });
      assert.notEqual(bad.verdict, 'PASS', model);
      assert.ok(!bad.comparison.bitIdentical, model);
    }
  });
}

test("training checkpoints: the state dict under 'model' is found as convert finds it; one weights_only refuses is refused with the reason", async () => {
  for (const [, python] of PYTHONS) {
    const r = await verify(python, { modelClass: `${MODELS}:ResCNN`, checkpoint: join(T2, 'rescnn', 'train.pt'), against: join(T2, 'rescnn', 'dp.pt') });
    assert.equal(r.verdict, 'PASS', r.reasons.join('; '));
    assert.deepEqual(
      r.python!.applied.map((a) => [a.path, a.stripped]),
      [
        [['model'], ['module.']],
        [[], ['module.']],
      ],
    );
    // the sample's checkpoint.pth.tar holds a numpy scalar (best_acc), which weights_only refuses in 1.13 and 2.x
    const { err } = await failure({ modelClass: `${sample('digits_model.py')}:DigitsCNN`, checkpoint: sample('checkpoint.pth.tar') }, python);
    assert.match(
      err.message,
      /^torch \S+ refuses checkpoint\.pth\.tar with weights_only=True \(.+\); write its model state dict first: ckpt convert .*checkpoint\.pth\.tar --unwrap$/,
    );
  }
  const unwrapped = join(tempDir(), 'model.pt');
  await convertFile(sample('checkpoint.pth.tar'), { rules: { ...NO_RULES, unwrap: true }, output: unwrapped, force: true, syncFolder: false });
  const r = await verify('/usr/bin/python3', { modelClass: `${sample('digits_model.py')}:DigitsCNN`, checkpoint: unwrapped, against: sample('dp.pt') });
  assert.equal(r.verdict, 'PASS', r.reasons.join('; '));
  assert.equal(r.runs[0]!.metrics.correct, 356);
});

test("the user's print() does not break the protocol; --model-args reach the constructor", async () => {
  const r = await verify('/usr/bin/python3', {
    modelClass: `${join(T2, 'faulty.py')}:PrintsToStdout`,
    checkpoint: join(T2, 'rescnn', 'dp.pt'),
    against: join(T2, 'rescnn', 'dp.pt'),
    limit: 70,
  });
  assert.equal(r.verdict, 'PASS');
  const args = await verify('/usr/bin/python3', {
    modelClass: `${MODELS}:NeedsArgs`,
    modelArgs: { hidden: 32 },
    checkpoint: join(T2, 'bnmlp', 'dp.pt'),
    limit: 10,
  }).catch((e: CheckpointError) => e);
  // NeedsArgs wraps the MLP as `net.`: the keys do not fit, which strict loading says
  assert.ok(args instanceof CheckpointError && /missing keys and unexpected keys/.test(args.message), String(args));
});

test('an import error, a constructor error, a strict-load failure and a killed runner each give one line, in bounded time', async () => {
  const cases: [string, Partial<VerifyOptions> & { checkpoint: string; modelClass: string }, RegExp, RegExp | null][] = [
    [
      'import',
      { modelClass: `${join(T2, 'broken_import.py')}:Model`, checkpoint: join(T2, 'rescnn', 'dp.pt') },
      /^importing .*broken_import\.py failed: ModuleNotFoundError: No module named 'a_package_that_is_not_installed'$/,
      /Traceback/,
    ],
    [
      'constructor',
      { modelClass: `${join(T2, 'faulty.py')}:RaisesInInit`, modelArgs: { width: 3 }, checkpoint: join(T2, 'rescnn', 'dp.pt') },
      /^RaisesInInit\(\*\*\{"width": 3\}\) failed: ValueError: width 3 is not supported by this build$/,
      /raise ValueError/,
    ],
    [
      'strict load',
      { modelClass: `${MODELS}:ResCNN`, checkpoint: join(T2, 'bnmlp', 'dp.pt') },
      /^load_state_dict\(strict=True\) failed for ResCNN: missing keys and unexpected keys: Missing key\(s\) in state_dict: "conv1\.weight"/,
      /Traceback/,
    ],
    [
      'killed',
      { modelClass: `${join(T2, 'faulty.py')}:KillsItself`, checkpoint: join(T2, 'rescnn', 'dp.pt') },
      /^the Python runner \(\/usr\/bin\/python3\) was killed by SIGKILL while a batch of 64$/,
      null,
    ],
    ['no class', { modelClass: `${MODELS}:NoSuchClass`, checkpoint: join(T2, 'rescnn', 'dp.pt') }, /models\.py has no NoSuchClass$/, null],
  ];
  for (const [what, o, message, details] of cases) {
    const { err, ms } = await failure(o);
    assert.equal(err.kind, 'python', what);
    assert.match(err.message, message, what);
    assert.ok(!err.message.includes('\n'), `${what}: one line`);
    if (details) assert.match(err.details ?? '', details, `${what}: the traceback is under details`);
    assert.ok(ms < FAILURE_BOUND_MS, `${what} took ${ms} ms`);
  }
});

test('a missing interpreter and a whole pickled module are refused with one line', async () => {
  const { err } = await failure({ modelClass: `${MODELS}:ResCNN`, checkpoint: join(T2, 'rescnn', 'dp.pt') }, '/nonexistent/python');
  assert.match(err.message, /^\/nonexistent\/python: no such interpreter/);
  const mod = await failure({ modelClass: `${sample('digits_model.py')}:DigitsCNN`, checkpoint: sample('whole_model_dp.pt') });
  assert.match(
    mod.err.message,
    /a whole pickled module, which torch\.load\(weights_only=True\) refuses; write its state dict first: ckpt convert .* --export-state-dict$/,
  );
});

test('the CLI prints the one line, then the traceback under details, and exits 2', () => {
  const ckpt = fileURLToPath(new URL('../../dist/ckpt.js', import.meta.url));
  const r = spawnSync(
    process.execPath,
    [ckpt, 'verify', '--python', '/usr/bin/python3', '--model-class', `${join(T2, 'broken_import.py')}:Model`, '--data', NPZ, join(T2, 'rescnn', 'dp.pt')],
    { encoding: 'utf8', timeout: FAILURE_BOUND_MS },
  );
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n');
  assert.match(lines[0]!, /^ckpt: error: importing .*broken_import\.py failed: ModuleNotFoundError/);
  assert.equal(lines[1], 'details:');
  assert.match(r.stderr, /Traceback \(most recent call last\)/);
});
