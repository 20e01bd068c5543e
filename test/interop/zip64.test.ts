// A conversion whose storage passes 4 GiB is written as zip64, read back by our zip reader, and
// loaded by real torch: torch 1.13 (Debian's /usr/bin/python3) lists and reads its records through
// `torch._C.PyTorchFileReader` (the miniz reader torch.load uses), torch 2.x loads it with
// `torch.load(f, mmap=True, weights_only=True)`, so no 4 GiB copy lands in memory.
// The source is a sparse safetensors file (a header plus holes: no disk, no RAM); the output is a
// real 4 GiB file, removed afterwards. Skips, saying why, when the disk has under 10 GB free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZipArchive } from '../../main/formats/zip/zip.ts';
import { FileReader } from '../../main/io/random-access.ts';
import { IN_CI, PY, PY2, runCliAsync, tempDir, torchSkipReason } from './helpers.ts';

const U32_MAX = 0xffffffff;
/** float32 elements of the big tensor: 4 GiB + 64 bytes of storage, past every 32-bit zip field. */
const BIG_NUMEL = 2 ** 30 + 16;
const BIG_BYTES = BIG_NUMEL * 4;
/** Elements given non-zero values (the rest are the holes of the sparse file, read as zeros). */
const MARKS: Array<[index: number, value: number]> = [
  [0, 1.5],
  [2 ** 30 - 1, -2.25], // the last element below the 4 GiB byte offset
  [2 ** 30, 3.75], // the first element at or past it
  [BIG_NUMEL - 1, 7.125],
];
const AFTER = [1, 2, 3, 4]; // a small tensor stored after the big one: its record starts past 4 GiB
const NEED_FREE_BYTES = 10e9;

function diskSkipReason(dir: string): string | null {
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  return free < NEED_FREE_BYTES ? `only ${(free / 1e9).toFixed(1)} GB free under ${dir}; the zip64 test writes a 4.3 GB output and needs 10 GB` : null;
}

/** A safetensors file holding `big` (F32 [BIG_NUMEL], sparse but for MARKS) then `after` (F32 [4]). */
function writeSparseSafetensors(file: string): void {
  const header = {
    big: { dtype: 'F32', shape: [BIG_NUMEL], data_offsets: [0, BIG_BYTES] },
    after: { dtype: 'F32', shape: [AFTER.length], data_offsets: [BIG_BYTES, BIG_BYTES + 4 * AFTER.length] },
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const dataStart = 8 + json.length;
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, Buffer.concat([prefix, Buffer.from(json)]), 0, undefined, 0);
    const one = Buffer.alloc(4);
    for (const [index, value] of MARKS) {
      one.writeFloatLE(value);
      writeSync(fd, one, 0, 4, dataStart + index * 4);
    }
    const after = Buffer.alloc(4 * AFTER.length);
    AFTER.forEach((v, i) => after.writeFloatLE(v, 4 * i));
    writeSync(fd, after, 0, after.length, dataStart + BIG_BYTES);
  } finally {
    closeSync(fd);
  }
}

const TORCH113_CHECK = String.raw`
import json, struct, sys, torch
out = sys.argv[1]
past4g = sys.argv[2]
r = torch._C.PyTorchFileReader(out)
recs = sorted(r.get_all_records())
vals = list(struct.unpack('<4f', bytes(r.get_record(past4g))))
print(json.dumps({'records': recs, 'past4g': vals, 'version': bytes(r.get_record('version')).decode()}))
`;

const TORCH2_CHECK = String.raw`
import json, sys, torch
sd = torch.load(sys.argv[1], mmap=True, weights_only=True)
marks = json.loads(sys.argv[2])
big, after = sd['big'], sd['after']
print(json.dumps({'torch': torch.__version__, 'keys': sorted(sd), 'big_shape': list(big.shape), 'big_dtype': str(big.dtype),
  'device': str(big.device), 'marks': [big[i].item() for i, _ in marks], 'zeros_at': [big[5].item(), big[2**30 + 5].item()],
  'after': after.tolist(), 'after_dtype': str(after.dtype)}))
`;

function python(exe: string, script: string, args: string[]): Record<string, unknown> {
  const r = spawnSync(exe, ['-I', '-B', '-c', script, ...args], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${exe} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const skip = torchSkipReason() ?? diskSkipReason(tmpdir());
if (skip) console.log(`# skip: ${skip}`);
const torch2Skip = existsSync(PY2)
  ? null
  : `torch 2.x venv not found at ${PY2} (bash test/fixtures/setup-torch2.sh makes it); the torch 1.13 record checks still run`;

test('a conversion past 4 GiB writes zip64 that our reader and real torch read', { skip: skip ?? false, timeout: 900_000 }, async (t) => {
  const dir = tempDir('zip64');
  const source = join(dir, 'big.safetensors');
  const output = join(dir, 'big-cpu.pt');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeSparseSafetensors(source);

  const run = await runCliAsync(['convert', source, '--preset', 'cpu', '-o', output], { timeoutMs: 600_000 });
  assert.equal(run.code, 0, `convert failed: ${run.stderr || run.stdout}`);
  assert.match(run.stdout, /verified: 2 tensors/);
  rmSync(source);
  let recordNames: string[] = [];
  let smallRecord = '';

  await t.test('our zip reader finds the zip64 sizes and offsets', () => {
    const reader = new FileReader(output);
    const zip = ZipArchive.open(reader);
    const prefix = zip.entries[0]!.name.split('/')[0]!;
    const records = new Map(zip.entries.map((e) => [e.name.slice(prefix.length + 1), e]));
    recordNames = [...records.keys()].sort();
    for (const name of ['byteorder', 'data.pkl', 'version']) assert.ok(records.has(name), `no ${name} record in ${recordNames.join(', ')}`);
    const storages = zip.entries.filter((e) => e.name.startsWith(`${prefix}/data/`));
    assert.equal(storages.length, 2);
    const big = storages.find((e) => e.uncompressedSize > 16)!;
    const small = storages.find((e) => e.uncompressedSize === 16)!;
    smallRecord = small.name.slice(prefix.length + 1);
    assert.equal(big.uncompressedSize, BIG_BYTES);
    assert.equal(big.compressedSize, BIG_BYTES);
    assert.ok(small.localHeaderOffset > U32_MAX, `data/1 starts at ${small.localHeaderOffset}, not past 4 GiB`);
    for (const e of zip.entries) assert.equal(zip.dataRange(e).offset % 64, 0, `${e.name} is not 64-byte aligned`);
    const bigData = zip.dataRange(big);
    for (const [index, value] of MARKS) assert.equal(Buffer.from(reader.read(bigData.offset + 4 * index, 4)).readFloatLE(0), value);
    const smallBytes = Buffer.from(zip.readEntry(small));
    assert.deepEqual(
      AFTER.map((_, i) => smallBytes.readFloatLE(4 * i)),
      AFTER,
    );
    // The end records: a zip64 end record and its locator before the classic one, as the central
    // directory starts past 4 GiB (APPNOTE 4.3.14, 4.3.15).
    const tail = Buffer.from(reader.read(reader.size - 22 - 20 - 56, 56 + 20 + 22));
    assert.equal(tail.readUInt32LE(0), 0x06064b50);
    assert.equal(tail.readUInt32LE(56), 0x07064b50);
    assert.equal(tail.readUInt32LE(76 + 16), U32_MAX, 'classic end record points at the zip64 one');
    reader.close();
  });

  await t.test('torch 1.13 lists the records and reads the one stored past 4 GiB', () => {
    assert.ok(smallRecord, 'the zip reader check did not run');
    const got = python(PY, TORCH113_CHECK, [output, smallRecord]);
    assert.deepEqual(got['records'], recordNames);
    assert.deepEqual(got['past4g'], AFTER);
    assert.equal(got['version'], '3\n');
  });

  await t.test('torch 2.x loads it with mmap=True, weights_only=True', { skip: IN_CI ? false : (torch2Skip ?? false) }, () => {
    if (torch2Skip) assert.fail(`CI must run this check: ${torch2Skip}`);
    const got = python(PY2, TORCH2_CHECK, [output, JSON.stringify(MARKS)]);
    assert.deepEqual(got['keys'], ['after', 'big']);
    assert.deepEqual(got['big_shape'], [BIG_NUMEL]);
    assert.equal(got['big_dtype'], 'torch.float32');
    assert.equal(got['device'], 'cpu');
    assert.deepEqual(
      got['marks'],
      MARKS.map(([, v]) => v),
    );
    assert.deepEqual(got['zeros_at'], [0, 0]);
    assert.deepEqual(got['after'], AFTER);
    assert.equal(got['after_dtype'], 'torch.float32');
  });
});
