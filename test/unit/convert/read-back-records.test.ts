// readOwnRecords: the read-back of the records of an archive the writer has just written, without
// ZipArchive's object per directory entry. A real torch fixture is written by the writer; what it
// gives must be what ZipArchive reads (data.pkl's bytes, every storage record in place), and any
// difference from what was written (the directory, a local header, what the check is told) must
// either mark the record or hand the file to ZipArchive (null).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openFormat } from '../../../main/formats/open-format.ts';
import { openTorchArchive } from '../../../main/formats/torch/torch-zip.ts';
import { FileReader } from '../../../main/io/random-access.ts';
import { readOwnRecords } from '../../../main/convert/read-back-records.ts';
import { writeTorchCheckpoint, type WrittenStorages } from '../../../main/convert/write-checkpoint.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-own-records-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes the fixture as `out.pt`; returns the file and what the writer says it wrote. */
function written(): { file: string; storages: WrittenStorages } {
  const source = openFormat('test/fixtures/torch/cpu_state_dict.pt');
  const file = path.join(dir, 'out.pt');
  try {
    const fd = fs.openSync(file, 'w');
    try {
      return { file, storages: writeTorchCheckpoint(fd, source.root, { archiveName: 'out', location: (s) => s.location }).storages };
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    source.close();
  }
}

function readBack(file: string, storages: WrittenStorages): ReturnType<typeof readOwnRecords> {
  const reader = new FileReader(file);
  try {
    return readOwnRecords(reader, storages);
  } finally {
    reader.close();
  }
}

test('an undamaged output: data.pkl as ZipArchive reads it, every storage record in place', () => {
  const { file, storages } = written();
  assert.ok(storages.length >= 2, `${storages.length} storages`);
  const r = readBack(file, storages);
  assert.ok(r, 'read without ZipArchive');
  assert.deepEqual([...r.inPlace], Array(storages.length).fill(1));
  const reader = new FileReader(file);
  try {
    const archive = openTorchArchive(reader);
    assert.deepEqual(Buffer.from(r.pickle), Buffer.from(archive.zip.readEntry(archive.zip.get('out/data.pkl')!)));
  } finally {
    reader.close();
  }
});

test('a storage told at another offset, or with another CRC, is not in place; the others are', () => {
  const { file, storages } = written();
  storages.setWritten(1, storages.crc32(1), storages.dataOffset(1) + 64);
  storages.setWritten(0, (storages.crc32(0) + 1) >>> 0, storages.dataOffset(0));
  const r = readBack(file, storages);
  assert.ok(r);
  assert.deepEqual([...r.inPlace], [0, 0, ...Array(storages.length - 2).fill(1)]);
});

test('a local header changed on disk marks its record not in place', () => {
  const { file, storages } = written();
  // the name of record data/1 in its local header (the directory, hashed, keeps its own copy)
  const bytes = fs.readFileSync(file);
  const at = bytes.indexOf(Buffer.from('out/data/1'));
  assert.ok(at > 0 && at < storages.archive!.bytes - storages.archive!.tail.bytes, 'the local header comes first');
  bytes[at + 'out/data/'.length] = 0x39; // data/9: no storage of that index was written in its place
  fs.writeFileSync(file, bytes);
  const r = readBack(file, storages);
  assert.ok(r);
  assert.equal(r.inPlace[1], 0);
  assert.equal(r.inPlace[0], 1);
});

const HANDED_OVER: Array<[string, (file: string, storages: WrittenStorages) => void]> = [
  [
    'a changed central directory',
    (file, s) => {
      const bytes = fs.readFileSync(file);
      const at = bytes.lastIndexOf(Buffer.from('out/data/0'));
      assert.ok(at >= s.archive!.bytes - s.archive!.tail.bytes, 'in the directory');
      bytes[at + 'out/data/'.length] = 0x31;
      fs.writeFileSync(file, bytes);
    },
  ],
  ['a file of another size', (file) => fs.appendFileSync(file, Buffer.alloc(1))],
  ['a writer that did not say what it wrote', (_, s) => void (s.archive = null)],
  [
    'a broken local header signature',
    (file) => {
      const bytes = fs.readFileSync(file);
      bytes[bytes.indexOf(Buffer.from('out/data/0')) - 30] = 0;
      fs.writeFileSync(file, bytes);
    },
  ],
];
for (const [label, damage] of HANDED_OVER) {
  test(`${label}: handed to ZipArchive (null)`, () => {
    const { file, storages } = written();
    damage(file, storages);
    assert.equal(readBack(file, storages), null);
  });
}
