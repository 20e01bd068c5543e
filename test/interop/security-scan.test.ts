// `ckpt scan`'s weightsOnly against real torch: on every file of the security corpus and of
// ../shared/corpus/real, `weightsOnly.loads` equals whether torch.load(f, weights_only=True)
// succeeds (torch 2.13 and 1.13), and `unsupported` equals
// torch.serialization.get_unsafe_globals_in_checkpoint (torch 2.13) wherever that answers.
// torch runs in a subprocess whose cwd is a fresh temp folder; weights_only=True never runs a
// payload, and the test checks that no marker file appeared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanFile } from '../../main/checkpoint/scan/scan-file.ts';
import { CORPUS_DIR, sharedSkipReason } from '../helpers/shared-dir.ts';
import { IN_CI, PY, REPO, torchSkipReason } from './helpers.ts';

const DIR = join(REPO, 'test', 'fixtures', 'security');
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { marker: string; files: Record<string, unknown> };
const PY2 = join(REPO, '.venv-torch2', 'bin', 'python');

interface TorchSays {
  file: string;
  torch: string;
  loads: boolean;
  error?: string;
  unsafe?: string[] | null;
}

function askTorch(python: string, files: string[]): TorchSays[] {
  const sandbox = mkdtempSync(join(tmpdir(), 'ckpt-scan-torch-'));
  try {
    const r = spawnSync(python, [join(DIR, 'torch_verdicts.py'), ...files], { cwd: sandbox, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.deepEqual(
      readdirSync(sandbox).filter((f) => f.includes(EXPECTED.marker)),
      [],
      'torch.load(weights_only=True) ran no payload',
    );
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TorchSays);
  } finally {
    rmSync(sandbox, { recursive: true, force: true });
  }
}

function files(): string[] {
  const own = Object.keys(EXPECTED.files).map((f) => join(DIR, f));
  const real = sharedSkipReason()
    ? []
    : readdirSync(CORPUS_DIR)
        .filter((f) => !f.endsWith('.tsv') && !f.endsWith('.md'))
        .map((f) => join(CORPUS_DIR, f));
  return [...own, ...real];
}

function compare(t: TorchSays[], version: string): string[] {
  const wrong: string[] = [];
  for (const said of t) {
    const r = scanFile(said.file);
    const ours = r.weightsOnly!.byTorch[version]!;
    if (ours.loads !== said.loads)
      wrong.push(`${said.file}: ours loads=${ours.loads} (${ours.refusal ?? ''}), torch ${said.torch} loads=${said.loads} (${said.error ?? ''})`);
    if (version === '2.13' && Array.isArray(said.unsafe) && JSON.stringify(said.unsafe) !== JSON.stringify(r.weightsOnly!.unsupported)) {
      wrong.push(`${said.file}: unsupported ${JSON.stringify(r.weightsOnly!.unsupported)}, torch ${JSON.stringify(said.unsafe)}`);
    }
  }
  return wrong;
}

const skip2 = existsSync(PY2) ? null : `torch 2.x venv not found at ${PY2} (bash test/fixtures/setup-torch2.sh makes it)`;
if (skip2 && IN_CI) throw new Error(skip2);
if (skip2) console.log(`# skip: ${skip2}`);

test('weightsOnly equals torch 2.13: torch.load(weights_only=True) and get_unsafe_globals_in_checkpoint, every file', { skip: skip2 ?? false }, () => {
  const said = askTorch(PY2, files());
  assert.ok(said.length >= Object.keys(EXPECTED.files).length);
  assert.ok(
    said.some((s) => Array.isArray(s.unsafe) && s.unsafe.length > 0),
    'get_unsafe_globals_in_checkpoint answered with names somewhere',
  );
  assert.deepEqual(compare(said, '2.13'), []);
});

test('weightsOnly equals torch 1.13: torch.load(weights_only=True), every file', { skip: torchSkipReason() ?? false }, () => {
  const said = askTorch(PY, files());
  assert.deepEqual(compare(said, '1.13'), []);
});

test('an omegaconf DictConfig hyper-parameter (Lightning-style checkpoint): the verdict is what torch 2.13 weights_only says', { skip: skip2 ?? false }, () => {
  // test/fixtures/security/generate_omegaconf.py: real omegaconf 2.2 objects saved by torch 1.13
  const file = join(DIR, 'benign/omegaconf_hparams.ckpt');
  const [said] = askTorch(PY2, [file]);
  const r = scanFile(file);
  assert.equal(said?.loads, false, 'torch 2.13 refuses the DictConfig');
  assert.equal(r.verdict, 'unknown-class', 'classes to construct, nothing called');
  assert.equal(r.weightsOnlyLoadable, said?.loads);
  assert.deepEqual(r.weightsOnly?.unsupported, said?.unsafe);
  assert.ok(r.weightsOnly?.unsupported.includes('omegaconf.dictconfig.DictConfig'));
});
