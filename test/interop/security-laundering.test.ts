// Conversions never carry code: every file of the security corpus converted with
// `--preset cpu` is either refused (exit 2, one line, nothing written) or written so that real
// torch 2.13 loads it with torch.load(out, weights_only=True). Runs in a temp folder and checks
// that no payload's marker file ever appears.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { IN_CI, PY2, REPO, runCliAsync } from './helpers.ts';

const DIR = join(REPO, 'test', 'fixtures', 'security');
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { marker: string; files: Record<string, { verdict: string }> };
const skip = existsSync(PY2) ? null : `torch 2.x venv not found at ${PY2} (bash test/fixtures/setup-torch2.sh makes it)`;
if (skip && IN_CI) throw new Error(skip);
if (skip) console.log(`# skip: ${skip}`);

/** Torch's word on each written output (one JSON line each): all load with weights_only=True, and no payload left its marker. Returns how many it checked. */
function assertAllLoad(runs: SpawnSyncReturns<string>[], sandbox: string): number {
  const said = runs.flatMap((r) => {
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    return r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { file: string; loads: boolean; error?: string });
  });
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
  return said.length;
}

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
    const said = assertAllLoad([spawnSync(PY2, [join(DIR, 'torch_verdicts.py'), ...written], { cwd: sandbox, encoding: 'utf8', timeout: 600_000 })], sandbox);
    assert.equal(said, written.length);
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

// torch 2.13 reads a DCP folder as torch.distributed.checkpoint does (format_utils.py
// `dcp_to_torch_save`: .metadata with pickle.load, bytes items with torch.load(weights_only=False));
// what it gets back is then saved and loaded again with weights_only=True. A carried payload
// would run in the first step and leave its marker; a carried class would fail the second.
const DCP_LOADS = `import json, os, sys, tempfile, torch
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
for folder in sys.argv[1:]:
    out = os.path.join(tempfile.mkdtemp(), "back.pt")
    try:
        dcp_to_torch_save(folder, out)
        torch.load(out, weights_only=True)
        print(json.dumps({"file": folder, "loads": True}))
    except Exception as e:
        print(json.dumps({"file": folder, "loads": False, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}))`;

test('every security fixture re-sharded (--to single, --to dcp) is refused or loads with weights_only=True in torch 2.13', {
  skip: skip ?? false,
}, async () => {
  const sandbox = mkdtempSync(join(tmpdir(), 'ckpt-launder-reshard-'));
  try {
    const written = { single: [] as string[], dcp: [] as string[] };
    const inputs = [...Object.keys(EXPECTED.files), 'evil/dcp'];
    for (const name of inputs) {
      for (const to of ['single', 'dcp'] as const) {
        const out = join(sandbox, `${name.replace(/[/.]/g, '_')}.${to === 'single' ? 'pt' : 'dcp'}`);
        const r = await runCliAsync(['reshard', join(DIR, name), '--to', to, '-o', out], { cwd: sandbox });
        if (r.code === 0) {
          assert.ok(existsSync(out), `${name} → ${to}: exit 0 but no output`);
          assert.notEqual(EXPECTED.files[name]?.verdict ?? 'dangerous', 'dangerous', `${name} → ${to}: a dangerous source was re-sharded to a torch output`);
          written[to].push(out);
        } else {
          assert.equal(r.code, 2, `${name} → ${to}: ${r.stderr}`);
          assert.equal(r.stderr.trim().split('\n').length, 1, `${name} → ${to}: one line: ${r.stderr}`);
          assert.ok(!existsSync(out), `${name} → ${to}: refused, yet ${basename(out)} was written`);
        }
      }
    }
    console.log(`# re-sharded: ${written.single.length} single files and ${written.dcp.length} DCP folders of ${inputs.length} fixtures; the rest refused`);
    assert.ok(
      written.single.length >= 5 && written.dcp.length >= 5,
      `some fixtures re-shard: ${[...written.single, ...written.dcp].map((w) => basename(w)).join(', ')}`,
    );
    const said = assertAllLoad(
      [
        spawnSync(PY2, [join(DIR, 'torch_verdicts.py'), ...written.single], { cwd: sandbox, encoding: 'utf8', timeout: 600_000 }),
        spawnSync(PY2, ['-c', DCP_LOADS, ...written.dcp], { cwd: sandbox, encoding: 'utf8', timeout: 600_000 }),
      ],
      sandbox,
    );
    assert.equal(said, written.single.length + written.dcp.length);
  } finally {
    rmSync(sandbox, { recursive: true, force: true });
  }
});
