// Conversions never carry code: every file of the security corpus converted with
// `--preset cpu` is either refused (exit 2, one line, nothing written) or written so that real
// torch 2.13 loads it with torch.load(out, weights_only=True). Runs in a temp folder and checks
// that no payload's marker file ever appears.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { IN_CI, REPO, runCliAsync } from './helpers.ts';

const DIR = join(REPO, 'test', 'fixtures', 'security');
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { marker: string; files: Record<string, { verdict: string }> };
const PY2 = join(REPO, '.venv-torch2', 'bin', 'python');
const skip = existsSync(PY2) ? null : `torch 2.x venv not found at ${PY2} (bash test/fixtures/setup-torch2.sh makes it)`;
if (skip && IN_CI) throw new Error(skip);
if (skip) console.log(`# skip: ${skip}`);

test('every security fixture converted with --preset cpu is refused or loads with weights_only=True in torch 2.13', { skip: skip ?? false }, async () => {
  const sandbox = mkdtempSync(join(tmpdir(), 'ckpt-launder-'));
  try {
    const written: string[] = [];
    const refused: string[] = [];
    for (const [name, want] of Object.entries(EXPECTED.files)) {
      const out = join(sandbox, `${name.replace(/[/.]/g, '_')}.pt`);
      const r = await runCliAsync(['convert', join(DIR, name), '--preset', 'cpu', '-o', out], { cwd: sandbox });
      if (r.code === 0) {
        assert.ok(existsSync(out), `${name}: exit 0 but no output`);
        assert.notEqual(want.verdict, 'dangerous', `${name}: a dangerous source was converted without --unwrap`);
        written.push(out);
      } else {
        assert.equal(r.code, 2, `${name}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line: ${r.stderr}`);
        assert.ok(!existsSync(out), `${name}: refused, yet ${basename(out)} was written`);
        refused.push(name);
      }
    }
    for (const name of Object.keys(EXPECTED.files).filter((n) => EXPECTED.files[n]!.verdict === 'dangerous'))
      assert.ok(refused.includes(name), `${name} was refused`);
    assert.ok(written.length >= 5, `some fixtures convert: ${written.map((w) => basename(w)).join(', ')}`);
    const r = spawnSync(PY2, [join(DIR, 'torch_verdicts.py'), ...written], { cwd: sandbox, encoding: 'utf8', timeout: 600_000 });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    const said = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; loads: boolean; error?: string });
    assert.deepEqual(
      said.filter((x) => !x.loads).map((x) => `${basename(x.file)}: ${x.error}`),
      [],
      'every output loads with weights_only=True',
    );
    assert.deepEqual(
      readdirSync(sandbox).filter((f) => f.includes(EXPECTED.marker)),
      [],
      'no payload ran',
    );
  } finally {
    rmSync(sandbox, { recursive: true, force: true });
  }
});

test('--unwrap takes only the tensors out of a dangerous file and says what was left behind', { skip: skip ?? false }, async () => {
  const sandbox = mkdtempSync(join(tmpdir(), 'ckpt-unwrap-'));
  try {
    const out = join(sandbox, 'clean.pt');
    const src = join(DIR, 'evil/torch_zip_system.pt');
    const refused = await runCliAsync(['convert', src, '--preset', 'cpu', '-o', out], { cwd: sandbox });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /the source is dangerous \(posix\.system\("touch CKPT_SCAN_MARKER"\)\).*--unwrap/);
    const unwrapped = await runCliAsync(['convert', join(DIR, 'evil/state_dict_beside_payload.pt'), '--preset', 'cpu', '--unwrap', '-o', out], {
      cwd: sandbox,
    });
    assert.equal(unwrapped.code, 0, unwrapped.stderr);
    assert.match(unwrapped.stdout, /left +posix\.system/);
    assert.doesNotMatch(unwrapped.stdout, /carried/);
    const loaded = spawnSync(PY2, ['-c', 'import torch,sys; print(sorted(torch.load(sys.argv[1], weights_only=True)))', out], {
      cwd: sandbox,
      encoding: 'utf8',
    });
    assert.equal(loaded.stdout.trim(), "['fc.bias', 'fc.weight']", loaded.stderr);
    const kept = await runCliAsync(['convert', join(DIR, 'benign/whole_model.pt'), '--preset', 'cpu', '--keep-objects', '-o', join(sandbox, 'model.pt')], {
      cwd: sandbox,
    });
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /kept .*__main__\.Model.*torch\.nn\.modules\.linear\.Linear/);
    const plain = await runCliAsync(['convert', join(DIR, 'benign/argparse_namespace.pt'), '--preset', 'cpu', '-o', join(sandbox, 'ns.pt')], { cwd: sandbox });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /plain +argparse\.Namespace → dict/);
    const r = spawnSync(
      PY2,
      ['-c', 'import torch,sys; d=torch.load(sys.argv[1], weights_only=True); print(type(d["args"]).__name__, d["args"])', join(sandbox, 'ns.pt')],
      { cwd: sandbox, encoding: 'utf8' },
    );
    assert.equal(r.stdout.trim(), "dict {'lr': 0.1, 'epochs': 3}", r.stderr);
    assert.deepEqual(
      readdirSync(sandbox).filter((f) => f.includes(EXPECTED.marker)),
      [],
    );
  } finally {
    rmSync(sandbox, { recursive: true, force: true });
  }
});
