// TorchZipWriter, table-driven: archives it writes read back through our ZipArchive (names,
// sizes, CRC-32, 64-byte alignment, contents), and the same records as torch 1.13's own writer
// (test/fixtures/zip-writer/torch113_records.pt, from generate.py there) get the same names, order,
// contents, CRCs, alignment and `FB` padding field. torch's file is not byte-identical: its
// miniz writer streams each record with a data descriptor (flag bit 3), ours patches the header.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';
import { ALIGNMENT, TorchZipWriter } from '../../../../main/formats/torch/torch-zip-writer.ts';
import { BufferReader, FileReader, readWholeFile } from '../../../../main/io/random-access.ts';

const TORCH_FIXTURE = new URL('../../../fixtures/zip-writer/torch113_records.pt', import.meta.url).pathname;
/** The records generate.py gave torch 1.13's writer, in the same order. */
const RECORDS: Array<[string, Buffer]> = [
  ['data.pkl', Buffer.from([0x80, 0x02, 0x4b, 0x01, 0x2e])],
  ['byteorder', Buffer.from('little')],
  ['data/0', Buffer.from(Array.from({ length: 100 }, (_, i) => i))],
  ['data/1', Buffer.alloc(0)],
  ['data/2', Buffer.alloc(64)],
  ['a-longer-record-name/of/nested/parts', Buffer.alloc(63, 'x')],
];

const dir = mkdtempSync(join(tmpdir(), 'ckpt-zip-writer-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;

/** Writes an archive with `write`, optionally after `lead` bytes of something else; returns its path. */
function writeArchive(archiveName: string, write: (w: TorchZipWriter) => void, lead = 0, version?: string): string {
  const file = join(dir, `${fileNo++}.pt`);
  const fd = openSync(file, 'w');
  try {
    if (lead) writeSync(fd, Buffer.alloc(lead, 0xee), 0, lead, 0);
    const w = new TorchZipWriter(fd, archiveName, lead);
    write(w);
    const end = w.finish(version);
    assert.equal(end, readWholeFile(file).length, 'finish() returns the archive end');
  } finally {
    closeSync(fd);
  }
  return file;
}

function open(file: string): ZipArchive {
  return ZipArchive.open(new FileReader(file));
}

const ROUND_TRIPS: Array<{ name: string; archive: string; records: Array<[string, Buffer]>; lead?: number; version?: string }> = [
  { name: 'no records: only version', archive: 'archive', records: [] },
  { name: 'the torch fixture records', archive: 'archive', records: RECORDS },
  {
    name: 'every size from 0 to 130 bytes (all paddings)',
    archive: 'sizes',
    records: Array.from({ length: 131 }, (_, n) => [`data/${n}`, Buffer.alloc(n, n)] as [string, Buffer]),
  },
  { name: 'a UTF-8 archive name', archive: 'modèle_ü', records: [['data.pkl', Buffer.from('p')]] },
  { name: 'after 1000 bytes of something else', archive: 'shifted', records: RECORDS, lead: 1000 },
  { name: 'after 13 bytes, a 2.x version string', archive: 'odd', records: RECORDS, lead: 13, version: '4\n' },
];

for (const c of ROUND_TRIPS) {
  test(`round trip: ${c.name}`, () => {
    const file = writeArchive(c.archive, (w) => c.records.forEach(([n, d]) => w.addRecord(n, d)), c.lead, c.version);
    const zip = open(file);
    const want = [...c.records, ['version', Buffer.from(c.version ?? '3\n')] as [string, Buffer]];
    assert.deepEqual(
      zip.entries.map((e) => e.name),
      want.map(([n]) => `${c.archive}/${n}`),
    );
    // With a start offset the writer's offsets are file offsets (the archive is not shifted).
    assert.equal(zip.startOffset, 0);
    for (const [name, data] of want) {
      const e = zip.get(`${c.archive}/${name}`)!;
      assert.equal(e.method, 0, `${name} stored`);
      assert.equal(e.uncompressedSize, data.length);
      assert.equal(e.crc32, zlib.crc32(data), `${name} CRC`);
      // Data on a 64-byte boundary of the file (inline_container.cc, getPadding).
      assert.equal(zip.dataRange(e).offset % ALIGNMENT, 0, `${name} aligned`);
      assert.deepEqual(Buffer.from(zip.readEntry(e)), data, `${name} bytes`);
    }
  });
}

test('streamed records: chunks land in order, the CRC is computed, dataOffset is where the bytes are', () => {
  const chunks = [Buffer.from('abc'), Buffer.alloc(0), Buffer.alloc(200, 7), Buffer.from('z')];
  const whole = Buffer.concat(chunks);
  let got: { crc: number; dataOffset: number } | undefined;
  const file = writeArchive('s', (w) => {
    got = w.addStreamed('data/0', whole.length, (write) => chunks.forEach(write));
  });
  const zip = open(file);
  const e = zip.get('s/data/0')!;
  assert.equal(got!.crc, zlib.crc32(whole));
  assert.equal(got!.dataOffset, zip.dataRange(e).offset);
  assert.deepEqual(Buffer.from(zip.readEntry(e)), whole);
});

test('gathering small writes: records of small and of 1 MiB chunks, mixed, keep their bytes, CRCs and alignment', () => {
  // a gathering writer copies writes under 1 MiB into its buffer and writes 1 MiB chunks straight
  // to the file, so a large record's header and CRC patch are gathered while its data is not
  const records: Array<[string, Buffer[]]> = [
    ['data/0', [Buffer.alloc(100, 1)]],
    ['data/1', [Buffer.alloc(1 << 20, 2), Buffer.alloc(1 << 20, 3), Buffer.alloc(5, 4)]],
    ['data/2', [Buffer.alloc(3, 5)]],
    ['data/3', [Buffer.alloc(1 << 20, 6)]],
    ['data/4', [Buffer.alloc(7, 7)]],
  ];
  const write = (order: Array<[string, Buffer[]]>): string => {
    const file = join(dir, `${fileNo++}.pt`);
    const fd = openSync(file, 'w');
    try {
      const w = new TorchZipWriter(fd, 'g', 0, true);
      for (const [name, chunks] of order) {
        const size = chunks.reduce((a, c) => a + c.length, 0);
        w.addStreamed(name, size, (write) => chunks.forEach(write));
      }
      w.finish();
    } finally {
      closeSync(fd);
    }
    return file;
  };
  // the second and third writers gather in the buffer the one before them finished with
  const file = write(records);
  const after = write([...records].reverse());
  const again = write(records);
  assert.deepEqual(readWholeFile(again), readWholeFile(file), 'a reused gather buffer leaves nothing of the last archive');
  for (const f of [file, after]) {
    const zip = open(f);
    for (const [name, chunks] of records) {
      const e = zip.get(`g/${name}`)!;
      const whole = Buffer.concat(chunks);
      assert.deepEqual(Buffer.from(zip.readEntry(e)), whole, name);
      assert.equal(e.crc32 >>> 0, zlib.crc32(whole) >>> 0, `${name} CRC`);
      assert.equal(zip.dataRange(e).offset % ALIGNMENT, 0, `${name} aligned`);
    }
  }
});

test('a gathering writer sends a large record with its header in one call: the file is byte for byte the one an ungathered writer makes', () => {
  // The CRC goes into the still-gathered header before the data (a known CRC, or a record in one
  // chunk); a record in several chunks or with a CRC known only at its end is patched afterwards.
  const big = (seed: number, n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255));
  const write = (gather: boolean): Buffer => {
    const file = join(dir, `${fileNo++}.pt`);
    const fd = openSync(file, 'w');
    try {
      const w = new TorchZipWriter(fd, 'v', 0, gather);
      w.addRecord('data.pkl', Buffer.from([0x80, 0x02, 0x4b, 0x01, 0x2e]));
      const one = big(1, 256 << 10);
      w.addStreamed('data/0', one.length, (write) => write(one)); // one chunk, CRC computed
      const two = big(2, 300 << 10);
      w.addStreamed('data/1', two.length, (write) => write(two), zlib.crc32(two)); // known CRC
      const three = big(3, 200 << 10);
      w.addStreamed('data/2', three.length, (write) => [three.subarray(0, 100 << 10), three.subarray(100 << 10)].forEach(write)); // two chunks
      const four = big(4, 128 << 10);
      w.addStreamed(
        'data/3',
        four.length,
        (write) => write(four),
        () => zlib.crc32(four),
      ); // CRC known at the end
      const five = big(5, 70 << 10);
      w.addBytes('data/4', five, 0, five.length); // from memory
      w.addBytes('data/5', five, 10, 20);
      w.finish();
    } finally {
      closeSync(fd);
    }
    return readWholeFile(file);
  };
  const gathered = write(true);
  assert.deepEqual(gathered, write(false));
  const zip = ZipArchive.open(new BufferReader(gathered, 'gathered'));
  for (const e of zip.entries) assert.equal(e.crc32 >>> 0, zlib.crc32(Buffer.from(zip.readEntry(e))) >>> 0, `${e.name} CRC`);
});

test('a record of a size known only at its end (addUnsized) is byte for byte the record addStreamed writes with that size', () => {
  // a pickle written as it is made: chunks under and over the direct-write size, with and
  // without gathering, the header patched while still gathered and after it reached the file
  const chunkSets: Buffer[][] = [[], [Buffer.from('abc')], [Buffer.alloc(70_000, 1), Buffer.from('x'), Buffer.alloc(65_530, 2)], [Buffer.alloc(3 << 20, 3)]];
  for (const gather of [false, true])
    for (const chunks of chunkSets) {
      const whole = Buffer.concat(chunks);
      const write = (add: (w: TorchZipWriter) => void): Buffer => {
        const file = join(dir, `${fileNo++}.pt`);
        const fd = openSync(file, 'w');
        try {
          const w = new TorchZipWriter(fd, 'u', 0, gather);
          add(w);
          w.addRecord('data/0', Buffer.from('after'));
          w.finish();
        } finally {
          closeSync(fd);
        }
        return readWholeFile(file);
      };
      let got: { crc: number; size: number; dataOffset: number } | undefined;
      const unsized = write((w) => {
        got = w.addUnsized('data.pkl', (add) => chunks.forEach(add));
      });
      const sized = write((w) => w.addStreamed('data.pkl', whole.length, (add) => chunks.forEach(add)));
      assert.deepEqual(unsized, sized, `${whole.length} bytes, gather ${gather}`);
      assert.equal(got!.size, whole.length);
      assert.equal(got!.crc, zlib.crc32(whole));
    }
});

test('a central directory of several pieces: every entry reads back, and the tail fingerprint is the file tail', () => {
  // 20,000 records make a directory of ~1.3 MB, written in 1 MiB pieces
  const file = join(dir, `${fileNo++}.pt`);
  const fd = openSync(file, 'w');
  let tail: { bytes: number; sha256: string } | null = null;
  try {
    const w = new TorchZipWriter(fd, 'many_records', 0, true);
    for (let i = 0; i < 20_000; i++) w.addRecord(`data/${i}`, Buffer.from([i & 255]));
    w.finish();
    tail = w.tail;
  } finally {
    closeSync(fd);
  }
  const bytes = readWholeFile(file);
  assert.ok(tail && tail.bytes > 1 << 20, `a tail of ${tail?.bytes} bytes`);
  assert.equal(
    createHash('sha256')
      .update(bytes.subarray(bytes.length - tail.bytes))
      .digest('hex'),
    tail.sha256,
  );
  const zip = open(file);
  assert.equal(zip.entries.length, 20_001);
  for (const e of zip.entries.slice(0, -1)) {
    const i = Number(e.name.slice('many_records/data/'.length));
    assert.equal(e.crc32, zlib.crc32(Buffer.from([i & 255])), e.name);
  }
  assert.deepEqual(Buffer.from(zip.readEntry(zip.get('many_records/data/19999')!)), Buffer.from([19_999 & 255]));
});

test('a known CRC is recorded as given, without computing it', () => {
  const file = writeArchive('k', (w) => {
    const r = w.addStreamed('data/0', 4, (write) => write(Buffer.from('abcd')), 0x12345678);
    assert.equal(r.crc, 0x12345678);
  });
  assert.equal(open(file).get('k/data/0')!.crc32, 0x12345678);
});

const WRONG_SIZES: Array<{ name: string; size: number; chunks: Buffer[]; error: RegExp }> = [
  { name: 'more bytes than declared', size: 3, chunks: [Buffer.from('ab'), Buffer.from('cd')], error: /record data\/0 got more than its 3 bytes/ },
  { name: 'fewer bytes than declared', size: 5, chunks: [Buffer.from('abc')], error: /record data\/0 got 3 of its 5 bytes/ },
];
for (const c of WRONG_SIZES) {
  test(`addStreamed refuses ${c.name}`, () => {
    const fd = openSync(join(dir, `${fileNo++}.pt`), 'w');
    try {
      const w = new TorchZipWriter(fd, 'bad');
      assert.throws(() => w.addStreamed('data/0', c.size, (write) => c.chunks.forEach(write)), c.error);
    } finally {
      closeSync(fd);
    }
  });
}

test('bytesWritten follows the records', () => {
  writeArchive('b', (w) => {
    assert.equal(w.bytesWritten, 0);
    const { dataOffset } = w.addStreamed('data/0', 10, (write) => write(Buffer.alloc(10)));
    assert.equal(w.bytesWritten, dataOffset + 10);
  });
});

/** The extra field of a local header: [extra bytes, offset of the data]. */
function localExtra(file: Buffer, headerAt: number): [Buffer, number] {
  const nameLen = file.readUInt16LE(headerAt + 26);
  const extraLen = file.readUInt16LE(headerAt + 28);
  const at = headerAt + 30 + nameLen;
  return [file.subarray(at, at + extraLen), at + extraLen];
}

test("the same records as torch 1.13's writer: names, order, contents, CRCs, alignment, FB padding", () => {
  const torchZip = open(TORCH_FIXTURE);
  const ours = open(writeArchive('torch113_records', (w) => RECORDS.forEach(([n, d]) => w.addRecord(n, d))));
  assert.deepEqual(
    ours.entries.map((e) => e.name),
    torchZip.entries.map((e) => e.name),
  );
  const torchBytes = readWholeFile(TORCH_FIXTURE);
  const ourBytes = readWholeFile(ours.reader.name);
  for (const [i, t] of torchZip.entries.entries()) {
    const o = ours.entries[i]!;
    assert.equal(o.crc32, t.crc32, `${t.name} CRC`);
    assert.equal(o.uncompressedSize, t.uncompressedSize, `${t.name} size`);
    assert.deepEqual(Buffer.from(ours.readEntry(o)), Buffer.from(torchZip.readEntry(t)), `${t.name} bytes`);
    // Both: one `FB` extra field of 'Z' padding that puts the data on a 64-byte boundary.
    for (const [bytes, e] of [
      [torchBytes, t],
      [ourBytes, o],
    ] as const) {
      const [extra, dataAt] = localExtra(bytes, e.localHeaderOffset);
      assert.equal(extra.toString('latin1', 0, 2), 'FB', `${e.name} extra id`);
      assert.equal(extra.readUInt16LE(2), extra.length - 4, `${e.name} extra length`);
      assert.equal(extra.subarray(4).toString('latin1'), 'Z'.repeat(extra.length - 4), `${e.name} padding`);
      assert.equal(dataAt % ALIGNMENT, 0, `${e.name} aligned`);
    }
  }
  assert.equal(ours.readText('torch113_records/version'), torchZip.readText('torch113_records/version'));
});

for (const gather of [false, true])
  test(`records past 4 GiB (zip64 local headers and directory entries)${gather ? ', gathered: headers made in place in the gather buffer' : ''}`, () => {
    // the archive starts past 4 GiB of a sparse file (no disk is used for the hole)
    const lead = 2 ** 32 + 100;
    const file = join(dir, `${fileNo++}.pt`);
    const fd = openSync(file, 'w');
    const data = Buffer.from('0123456789abcdef');
    const records: Array<[string, Buffer]> = [
      ['data.pkl', Buffer.from('pickle')],
      ['data/0', data.subarray(3, 9)],
      ['data/1', Buffer.alloc(200, 9)],
      ['data/2', Buffer.alloc(0)],
    ];
    try {
      ftruncateSync(fd, lead);
      const w = new TorchZipWriter(fd, 'far', lead, gather);
      w.addRecord('data.pkl', records[0]![1]);
      const added = w.addBytes('data/0', data, 3, 9);
      assert.equal(added.crc, zlib.crc32(records[1]![1]));
      w.addStreamed('data/1', 200, (write) => write(records[2]![1]));
      w.addBytes('data/2', data, 5, 5);
      w.finish();
    } finally {
      closeSync(fd);
    }
    const zip = open(file);
    assert.deepEqual(
      zip.entries.map((e) => e.name),
      [...records.map(([n]) => `far/${n}`), 'far/version'],
    );
    for (const [name, bytes] of records) {
      const e = zip.get(`far/${name}`)!;
      assert.equal(e.crc32, zlib.crc32(bytes), `${name} CRC`);
      const range = zip.dataRange(e);
      assert.ok(range.offset > 2 ** 32 && range.offset % ALIGNMENT === 0, `${name} aligned, past 4 GiB`);
      assert.deepEqual(Buffer.from(zip.readEntry(e)), bytes, `${name} bytes`);
    }
  });
