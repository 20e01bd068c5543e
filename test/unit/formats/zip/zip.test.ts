// The zip reader's end-record search: the last 4 KiB first, the full 64 KiB comment window after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { BufferReader, FileReader } from '../../../../main/io/random-access.ts';
import { ZipArchive, type ZipEntry } from '../../../../main/formats/zip/zip.ts';
import { TorchZipWriter } from '../../../../main/formats/torch/torch-zip-writer.ts';

const PLAIN = fs.readFileSync('test/fixtures/torch/compiled_dp_prefix.pt');

/** The same archive with a zip comment of `n` bytes (which contain no end-record signature). */
function withComment(n: number): Buffer {
  const eocdAt = PLAIN.length - 22;
  assert.equal(PLAIN.readUInt32LE(eocdAt), 0x06054b50, 'torch writes no comment');
  const out = Buffer.concat([PLAIN, Buffer.alloc(n, 0x41)]);
  out.writeUInt16LE(n, eocdAt + 20);
  return out;
}

test('an archive with a comment longer than the first 4 KiB window still opens, with the same entries', () => {
  const names = ZipArchive.open(new BufferReader(PLAIN)).entries.map((e) => e.name);
  for (const n of [0, 100, 4074, 4075, 10_000, 0xffff]) {
    assert.deepEqual(
      ZipArchive.open(new BufferReader(withComment(n))).entries.map((e) => e.name),
      names,
      `comment of ${n} bytes`,
    );
  }
});

test('a file with no end record within 64 KiB of its end is not a zip', () => {
  const tooFar = Buffer.concat([PLAIN, Buffer.alloc(0x10000 + 22, 0x41)]);
  assert.equal(ZipArchive.looksLikeZip(new BufferReader(tooFar)), false);
  assert.throws(() => ZipArchive.open(new BufferReader(tooFar)), { kind: 'corrupt-zip' });
});

/** A torch-style archive `arch/` holding one small record per name, in order, read back; `use` runs on it. */
function withArchive(names: readonly string[], use: (zip: ZipArchive) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-zip-names-'));
  try {
    const file = path.join(dir, 'a.pt');
    const fd = fs.openSync(file, 'w');
    try {
      const w = new TorchZipWriter(fd, 'arch');
      names.forEach((n, i) => w.addRecord(n, Buffer.alloc(i + 1, i)));
      w.finish();
    } finally {
      fs.closeSync(fd);
    }
    const zip = ZipArchive.open(new FileReader(file));
    try {
      use(zip);
    } finally {
      zip.reader.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The reference: a Map of every name, the last record of a name winning, as miniz reads it. */
function lastOfEachName(zip: ZipArchive): Map<string, ZipEntry> {
  return new Map(zip.entries.map((e) => [e.name, e]));
}

test('get, getNumbered and firstShadowed find the records a Map of names (the last of each) finds, numbered names included', () => {
  const names = ['data.pkl', 'data/0', 'data/1', 'data/10', 'data/007', 'data/x1', 'data/1234567890', 'data/2', 'other/3', 'data/1', 'data/'];
  withArchive(names, (zip) => {
    const last = lastOfEachName(zip);
    for (const e of zip.entries) assert.equal(zip.get(e.name), last.get(e.name), e.name);
    for (const name of ['arch/data/3', 'arch/data/01', 'arch/data', 'data/0', 'arch/other/4', '', 'arch/data/99999'])
      assert.equal(zip.get(name), undefined, name);
    assert.equal(
      zip.firstShadowed(),
      zip.entries.find((e) => last.get(e.name) !== e),
    );
    assert.equal(zip.firstShadowed()?.name, 'arch/data/1', 'the archive holds data/1 twice');
    for (const folder of ['arch/data/', 'arch/other/', 'arch/']) {
      for (const key of ['0', '1', '2', '3', '7', '10', '007', 'x1', '1234567890', '', '99', '-1', '1.0', 'data/1', 'data.pkl']) {
        assert.equal(zip.getNumbered(folder, key), zip.get(folder + key), `${folder} + ${key}`);
      }
    }
    assert.equal(zip.getNumbered('arch/data/', '1')?.uncompressedSize, 10, 'the last data/1, as torch reads it');
  });
});

test('an archive of more numbered folders than get indexes by number still finds every record', () => {
  const names = Array.from({ length: 40 }, (_, i) => `f${i % 20}/${i}`).concat(['f3/3', 'f19/0']);
  withArchive(names, (zip) => {
    const last = lastOfEachName(zip);
    for (const e of zip.entries) {
      assert.equal(zip.get(e.name), last.get(e.name), e.name);
      const slash = e.name.lastIndexOf('/');
      assert.equal(zip.getNumbered(e.name.slice(0, slash + 1), e.name.slice(slash + 1)), last.get(e.name), e.name);
    }
    assert.equal(zip.firstShadowed()?.name, 'arch/f3/3');
  });
});

test('each entry keeps the CRC-32 its record has, unsigned, and its offsets as read (torch.save output)', () => {
  const zip = ZipArchive.open(new BufferReader(PLAIN));
  const crcs = zip.entries.map((e) => e.crc32);
  // the entry keeps its CRC's 32 bits signed and reads them back unsigned: a file with one ≥ 2³¹ checks that
  assert.ok(
    crcs.some((c) => c >= 2 ** 31),
    'a record whose CRC is ≥ 2³¹',
  );
  for (const e of zip.entries) {
    assert.equal(e.crc32, zlib.crc32(zip.readEntry(e)), `${e.name}: CRC of its bytes`);
    assert.ok(e.crc32 >= 0 && e.crc32 < 2 ** 32, `${e.name}: unsigned`);
    assert.equal(PLAIN.readUInt32LE(e.localHeaderOffset), 0x04034b50, `${e.name}: a local header at its offset`);
  }
});

test('a central directory record whose name, extra or comment runs past the directory, or that is cut short, is a corrupt-zip error, never a RangeError', () => {
  const eocdAt = PLAIN.length - 22;
  const cdSize = PLAIN.readUInt32LE(eocdAt + 12);
  const cdOffset = PLAIN.readUInt32LE(eocdAt + 16);
  const records: number[] = [];
  for (let p = cdOffset; p < cdOffset + cdSize; p += 46 + PLAIN.readUInt16LE(p + 28) + PLAIN.readUInt16LE(p + 30) + PLAIN.readUInt16LE(p + 32)) {
    assert.equal(PLAIN.readUInt32LE(p), 0x02014b50, `a central record at ${p}`);
    records.push(p);
  }
  assert.ok(records.length > 2, `${records.length} records`);
  for (const p of records) {
    for (const field of [28, 30, 32]) {
      const hostile = Buffer.from(PLAIN);
      hostile.writeUInt16LE(0xffff, p + field); // name, extra or comment length
      assert.throws(() => ZipArchive.open(new BufferReader(hostile)), { kind: 'corrupt-zip' }, `length at ${p + field}`);
    }
  }
  // the directory cut inside each record, with an end record right after it (a copy cut short and closed again)
  const eocd = PLAIN.subarray(eocdAt);
  records.forEach((p, i) => {
    for (const cut of [1, 30, 46, 47]) {
      const end = Buffer.from(eocd);
      end.writeUInt16LE(i + 1, 8);
      end.writeUInt16LE(i + 1, 10);
      end.writeUInt32LE(p + cut - cdOffset, 12);
      const hostile = Buffer.concat([PLAIN.subarray(0, p + cut), end]);
      assert.throws(() => ZipArchive.open(new BufferReader(hostile)), { kind: 'corrupt-zip' }, `directory cut ${cut} bytes into ${p}`);
    }
  });
});

test('a zip64 extra field that claims more bytes than the extra field holds is a corrupt-zip error, never a RangeError', () => {
  const eocdAt = PLAIN.length - 22;
  const cdSize = PLAIN.readUInt32LE(eocdAt + 12);
  const cdOffset = PLAIN.readUInt32LE(eocdAt + 16);
  let last = cdOffset;
  for (let p = cdOffset; p < cdOffset + cdSize; p += 46 + PLAIN.readUInt16LE(p + 28) + PLAIN.readUInt16LE(p + 30) + PLAIN.readUInt16LE(p + 32)) last = p;
  assert.equal(PLAIN.readUInt16LE(last + 30) + PLAIN.readUInt16LE(last + 32), 0, 'the last record has no extra field and no comment');
  // the last 4 bytes of the last record's name become an extra field: a zip64 field (id 1) of 65,535
  // bytes, for a size that says it is in it; the directory ends right after that field's header
  const hostile = Buffer.from(PLAIN);
  const nameLen = PLAIN.readUInt16LE(last + 28);
  hostile.writeUInt16LE(nameLen - 4, last + 28);
  hostile.writeUInt16LE(4, last + 30);
  hostile.writeUInt16LE(1, last + 46 + nameLen - 4);
  hostile.writeUInt16LE(0xffff, last + 46 + nameLen - 2);
  hostile.writeUInt32LE(0xffffffff, last + 24);
  assert.throws(() => ZipArchive.open(new BufferReader(hostile)), { kind: 'corrupt-zip', message: /zip64 field of .* is too short/ });
});
