// The "load it" line `ckpt convert` prints, run in real torch 1.13: for a training checkpoint it
// names the state dict inside the container (`sd['model']`); the bare `sd` it used to print fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/run-cli.ts';
import { PY, REPO, torchSkipReason } from './helpers.ts';

const skip = torchSkipReason();
const SAMPLE = join(REPO, 'build', 'sample-workspace', 'digits-cnn');

/** Runs `model.load_state_dict(...)` as the hint writes it, on DigitsCNN, in torch; its error or 'ok'. */
function loadInTorch(file: string, call: string): string {
  const script = [
    'import sys, torch',
    `sys.path.insert(0, ${JSON.stringify(SAMPLE)})`,
    'from digits_model import DigitsCNN',
    `model = DigitsCNN(); f = ${JSON.stringify(file)}`,
    "sd = torch.load(f, map_location='cpu')",
    'try:',
    `    ${call}`,
    "    print('ok')",
    'except Exception as e:',
    "    print(type(e).__name__ + ': ' + str(e).splitlines()[0])",
  ].join('\n');
  const r = spawnSync(PY, ['-I', '-B', '-c', script], { encoding: 'utf8', timeout: 120_000, cwd: tmpdir() });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("a converted training checkpoint: the printed load line reaches into sd['model'], and torch loads it", { skip: skip ?? false }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'ckpt-hint-')), 'trained-cpu.pt');
  const r = runCli(['convert', join(SAMPLE, 'checkpoint.pth.tar'), '--preset', 'cpu', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const line = /^load it {3}(.*)$/m.exec(r.stdout)?.[1];
  assert.equal(line, "torch.load(f) with no map_location, then model.load_state_dict(sd['model'])");
  const call = /model\.load_state_dict\(.*\)$/.exec(line)![0];
  assert.equal(loadInTorch(out, call), 'ok');
  // what it used to print: the whole container is not a state dict
  assert.match(loadInTorch(out, 'model.load_state_dict(sd)'), /^RuntimeError: Error\(s\) in loading state_dict/);
});

test('a plain state dict keeps the plain line, and it loads', { skip: skip ?? false }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'ckpt-hint-')), 'dp-cpu.pt');
  const r = runCli(['convert', join(SAMPLE, 'dp.pt'), '--preset', 'cpu', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const line = /^load it {3}(.*)$/m.exec(r.stdout)?.[1];
  assert.equal(line, 'torch.load(f) with no map_location, then model.load_state_dict(sd)');
  assert.equal(loadInTorch(out, 'model.load_state_dict(sd)'), 'ok');
});
