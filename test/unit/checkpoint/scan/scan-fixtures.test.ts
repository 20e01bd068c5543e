// The security corpus (test/fixtures/security/, made by its generate.py with real torch 2.13):
// every technique family gets the verdict expected.json names, with a call and an offset for
// each dangerous finding, and scanning never creates the payloads' marker file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanFile } from '../../../../main/checkpoint/scan/scan-file.ts';
import { main } from '../../../../main/cli/index.ts';
import type { CliIO } from '../../../../main/cli/io.ts';
import { REPO } from '../../../helpers/run-cli.ts';

const DIR = join(REPO, 'test', 'fixtures', 'security');
const EXPECTED = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  marker: string;
  files: Record<string, { verdict: string; loader: string; live?: boolean | null; note: string }>;
};

function markers(dir: string, recursive = true): string[] {
  return readdirSync(dir, { recursive })
    .map(String)
    .filter((f) => f.includes(EXPECTED.marker));
}

for (const [name, want] of Object.entries(EXPECTED.files)) {
  test(`scan ${name}: ${want.verdict}${want.note ? ` (${want.note})` : ''}`, () => {
    const r = scanFile(join(DIR, name));
    const flagged = r.globals.filter((g) => g.class !== 'safe').map((g) => `${g.name}: ${g.class}`);
    assert.equal(r.verdict, want.verdict, `findings: ${flagged.join('; ')} notes: ${(r.notes ?? []).join(' | ')}`);
    // structure pickle.dumps never writes is dangerous by itself: the payload hides where parsers disagree
    const malformed = (r.notes ?? []).some((n) => n.includes('malformed pickle: '));
    if (want.verdict === 'dangerous') {
      const d = r.globals.filter((g) => g.class === 'dangerous');
      assert.ok(d.length > 0 || malformed, 'a dangerous global or a malformed-pickle note');
      for (const g of d) assert.ok(typeof g.offset === 'number' && g.record, `${g.name} has an offset and a record`);
      if (want.live && !malformed)
        assert.ok(
          d.some((g) => g.example),
          'a live payload shows the call it would make',
        );
    }
    if (want.verdict === 'safe' && want.loader === 'torch.load') assert.equal(r.weightsOnlyLoadable, true);
  });
}

test('a payload that runs before the stream breaks is still dangerous, with a note saying where it broke', () => {
  for (const name of ['evil/truncated_after_payload.p2.pkl', 'evil/malformed_after_payload.p2.pkl']) {
    const r = scanFile(join(DIR, name));
    assert.equal(r.verdict, 'dangerous');
    assert.ok(
      r.notes?.some((n) => /cut short|malformed|unreadable/.test(n)),
      (r.notes ?? []).join(' | '),
    );
    assert.deepEqual(r.globals.find((g) => g.name === 'os.system')?.example, 'os.system("touch CKPT_SCAN_MARKER")');
  }
});

test('pickles torch.load would not reach still count, with a note that says who would', () => {
  for (const name of [
    'evil/trailing_second_pickle.pkl',
    'evil/zip_no_prefix.pt',
    'evil/zip_wrapped.zip',
    'evil/tar_wrapped.tar',
    'evil/polyglot_zip_appended.pt',
    'evil/duplicate_data_pkl_first.pt',
  ]) {
    const r = scanFile(join(DIR, name));
    assert.equal(r.verdict, 'dangerous', name);
    assert.ok(
      r.notes?.some((n) => n.includes('torch.load would not reach it')),
      `${name}: ${(r.notes ?? []).join(' | ')}`,
    );
  }
});

test('duplicate data.pkl: torch reads the last one, so the first is the unreached one', () => {
  const first = scanFile(join(DIR, 'evil/duplicate_data_pkl_first.pt'));
  assert.equal(first.weightsOnlyLoadable, true, 'the last data.pkl is the clean one torch loads');
  const second = scanFile(join(DIR, 'evil/duplicate_data_pkl_second.pt'));
  assert.equal(second.weightsOnlyLoadable, false);
});

test('_rebuild_from_type_v2 with a function argument that is not a rebuild function is dangerous', () => {
  const r = scanFile(join(DIR, 'evil/rebuild_from_type_v2_system.p2.pkl'));
  const g = r.globals.find((x) => x.name === 'torch._tensor._rebuild_from_type_v2');
  assert.equal(g?.class, 'dangerous');
  assert.equal(r.globals.find((x) => x.name === 'os.system')?.class, 'dangerous');
});

test('a dotted protocol-4 name through an allowlisted function is never safe', () => {
  const r = scanFile(join(DIR, 'evil/dotted_rebuild_globals.p4.pkl'));
  assert.equal(r.globals.find((x) => x.name === 'torch._utils._rebuild_tensor.__globals__')?.class, 'dangerous');
});

test('the verdict says which torch versions it holds for', () => {
  const r = scanFile(join(DIR, 'benign/state_dict.pt'));
  assert.equal(r.verdict, 'safe');
  assert.match(r.holdsFor ?? '', /torch 2\.13 and 1\.13/);
  const p = scanFile(join(DIR, 'benign/parameter_and_bytes.pt'));
  assert.equal(p.weightsOnly?.byTorch['2.13']?.loads, true);
  assert.equal(p.weightsOnly?.byTorch['1.13']?.loads, false, 'torch 1.13 has no BINFLOAT, set or bytes in its allowlist');
  assert.match(p.holdsFor ?? '', /torch 2\.13 \(/);
});

function captureIO(): CliIO & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    color: false,
    isTTY: false,
    stdout: (s: string) => {
      io.out += s;
    },
    stderr: (s: string) => {
      io.err += s;
    },
  };
  return io;
}

test('ckpt scan: exit 0 when all are safe or benign, 1 when any is unknown-class or dangerous, 2 for a missing path', async () => {
  const cwd = process.cwd();
  const sandbox = mkdtempSync(join(tmpdir(), 'ckpt-scan-'));
  try {
    process.chdir(sandbox); // a payload that ran would leave its marker here
    let io = captureIO();
    assert.equal(
      await main(
        ['scan', '--json', join(DIR, 'benign/state_dict.pt'), join(DIR, 'benign/numpy_in_checkpoint.pt'), join(DIR, 'benign/weights.safetensors')],
        io,
      ),
      0,
    );
    const lines = io.out
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { file: string; verdict: string; globals: unknown[]; weightsOnly: { loads: boolean; unsupported: string[] }; notes: string[] },
      );
    assert.deepEqual(
      lines.map((l) => l.verdict),
      ['safe', 'benign', 'safe'],
    );
    assert.ok(
      lines[1]!.weightsOnly.unsupported.includes('numpy.dtype') && lines[1]!.weightsOnly.unsupported.every((n) => n.startsWith('numpy.')),
      lines[1]!.weightsOnly.unsupported.join(', '),
    );
    io = captureIO();
    assert.equal(await main(['scan', '--json', join(DIR, 'evil')], io), 1, 'a folder is scanned recursively');
    const evil = io.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; verdict: string });
    assert.equal(evil.length, Object.keys(EXPECTED.files).filter((f) => f.startsWith('evil/')).length);
    assert.ok(
      evil.every((l) => l.verdict === 'dangerous'),
      evil
        .filter((l) => l.verdict !== 'dangerous')
        .map((l) => l.file)
        .join(', '),
    );
    assert.match(io.err, /scanning 1\//, 'progress on stderr');
    io = captureIO();
    assert.equal(await main(['scan', join(DIR, 'benign/whole_model.pt')], io), 1);
    assert.match(io.out, /unknown-class .*__main__\.Model/);
    io = captureIO();
    assert.equal(await main(['scan', join(DIR, 'no-such-file.pt')], io), 2);
    assert.match(io.err, /no such file/);
    io = captureIO();
    assert.equal(await main(['scan'], io), 2);
    assert.deepEqual(markers(sandbox), []);
  } finally {
    process.chdir(cwd);
    rmSync(sandbox, { recursive: true, force: true });
  }
  assert.deepEqual([...markers(REPO, false), ...markers(DIR)], [], 'no marker in the repository root or the fixtures');
  assert.ok(!existsSync(join(DIR, EXPECTED.marker)));
});

test('old tar format: every pickle of the storages and tensors members is walked, past the raw bytes between them', () => {
  // torch/serialization.py `legacy_load` unpickles a header per storage and per tensor; the payloads
  // sit in the second ones, after the first storage's data and the first tensor's sizes
  for (const [name, record] of [
    ['evil/torch_tar_storage_header.tar', 'tar member storages, storage header 2 at byte 65'],
    ['evil/torch_tar_tensor_header.tar', 'tar member tensors, tensor header 2 at byte 68'],
  ] as const) {
    const r = scanFile(join(DIR, name));
    const g = r.globals.find((x) => x.class === 'dangerous');
    assert.equal(r.verdict, 'dangerous', name);
    assert.deepEqual([g?.name, g?.record, g?.example], ['os.system', record, 'os.system("touch CKPT_SCAN_MARKER")'], name);
  }
  // the clean one: torch 1.13's weights-only unpickler reads a tar (its persistent-id check lets the
  // string keys through); 2.x refuses the format outright
  const clean = scanFile(join(DIR, 'benign/torch_tar.tar'));
  assert.deepEqual(clean.weightsOnly?.byTorch['1.13'], { loads: true });
  assert.equal(clean.weightsOnly?.byTorch['2.13']?.loads, false);
});
