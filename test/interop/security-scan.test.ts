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
import { IN_CI, PY, PY2, REPO, torchSkipReason } from './helpers.ts';

const DIR = join(REPO, 'test', 'fixtures', 'security');
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { marker: string; files: Record<string, unknown> };

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

test('malformed structure is dangerous with a malformed-pickle note, and weightsOnly stays what torch 2.13 does with it', { skip: skip2 ?? false }, () => {
  // torch 2.13's weights-only unpickler (torch/_weights_only_unpickler.py `Unpickler.load`) has no
  // FRAME, MEMOIZE or DUP ("Unsupported operand"), but reads a second PROTO like the first
  const torchLoads: Record<string, boolean> = {
    'evil/second_proto.pt': true,
    'evil/frame_splits_opcode.p5.pkl': false,
    'evil/frame_in_frame.p5.pkl': false,
    'evil/dup_expansion.p4.pkl': false,
    'evil/memo_expansion.p4.pkl': false,
  };
  const said = askTorch(
    PY2,
    Object.keys(torchLoads).map((f) => join(DIR, f)),
  );
  for (const [i, name] of Object.keys(torchLoads).entries()) {
    const t = said[i]!;
    assert.equal(t.loads, torchLoads[name], `${name}: torch 2.13 ${t.error ?? 'loads it'}`);
    if (!t.loads) assert.match(t.error ?? '', /Unsupported operand/, name);
    const r = scanFile(join(DIR, name));
    assert.equal(r.verdict, 'dangerous', name);
    assert.equal(r.weightsOnlyLoadable, t.loads, name);
    const note = (r.notes ?? []).find((n) => n.includes('malformed pickle: '));
    assert.ok(note?.includes('a known scanner-bypass technique'), `${name}: ${(r.notes ?? []).join(' | ')}`);
    assert.equal(note?.includes('torch.load(weights_only=True) would load it'), t.loads, note);
  }
});

test('bytes of no format are not safe: torch 2.13 refuses them, and the verdict says "not a pickle"', { skip: skip2 ?? false }, () => {
  const file = join(DIR, 'benign/not_a_pickle.bin');
  const [t] = askTorch(PY2, [file]);
  assert.equal(t?.loads, false);
  const r = scanFile(file);
  assert.equal(r.verdict, 'benign');
  assert.equal(r.weightsOnlyLoadable, false);
  assert.ok(
    (r.notes ?? []).some((n) => n.startsWith('not a pickle:')),
    (r.notes ?? []).join(' | '),
  );
});

test('a gadget-family global only referenced is dangerous, and torch 2.13 refuses it', { skip: skip2 ?? false }, () => {
  const names = ['evil/reference_ast_parse.p2.pkl', 'evil/reference_config_module.p2.pkl'];
  const said = askTorch(
    PY2,
    names.map((f) => join(DIR, f)),
  );
  for (const [i, name] of names.entries()) {
    assert.equal(said[i]?.loads, false, name);
    const r = scanFile(join(DIR, name));
    assert.equal(r.verdict, 'dangerous', name);
    const g = r.globals.find((x) => x.class === 'dangerous');
    assert.equal(g?.calls, 0, `${name}: referenced, never called`);
    assert.match(g?.reason ?? '', /referenced, not called: importing it alone runs its module's import-time code/);
  }
});
