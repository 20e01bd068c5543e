// The read-back of a written torch zip catches a damaged output: bytes that differ from the
// source's (CRC-32), a record that is not where the writer put it, and two records of one name.
// A real torch fixture is written by the writer, then damaged on disk or in what the check is told.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openFormat } from '../../../main/formats/open-format.ts';
import { verifyOutput } from '../../../main/convert/read-back.ts';
import { releaseReadBack } from '../../../main/io/byte-verifier.ts';
import { StorageReadBack } from '../../../main/convert/storage-read-back.ts';
import { writeTorchCheckpoint, type WrittenStorages } from '../../../main/convert/write-checkpoint.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-corrupt-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Writes the fixture as `out.pt`, lets `damage` change the file or what the check is told was
 * written, reads it back and checks it.
 */
async function checkDamaged(damage: (file: string, storages: WrittenStorages) => void): Promise<{ verified: boolean; mismatch: string }> {
  const source = openFormat('test/fixtures/torch/cpu_state_dict.pt');
  const file = path.join(dir, 'out.pt');
  try {
    const fd = fs.openSync(file, 'w');
    let written: ReturnType<typeof writeTorchCheckpoint>;
    try {
      written = writeTorchCheckpoint(fd, source.root, { archiveName: 'out', location: (s) => s.location });
    } finally {
      fs.closeSync(fd);
    }
    damage(file, written.storages);
    const readBack = new StorageReadBack();
    for (const w of written.storages) readBack.add(file, w);
    const r = await verifyOutput(file, file, source.root, written.storages, (s) => s.location, readBack);
    return { verified: r.verified, mismatch: r.mismatch ?? '' };
  } finally {
    releaseReadBack(file);
    source.close();
  }
}

test('an undamaged output verifies', async () => {
  const r = await checkDamaged(() => {});
  assert.equal(r.verified, true, r.mismatch);
});

test("a flipped byte in a storage's data is a CRC-32 mismatch naming the tensor", async () => {
  const r = await checkDamaged((file, s) => {
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, s.dataOffset(1));
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, s.dataOffset(1));
    fs.closeSync(fd);
  });
  assert.equal(r.verified, false);
  assert.match(
    r.mismatch,
    /^\[".+"\]: storage bytes read back have crc32 [0-9a-f]{8}, the source's are [0-9a-f]{8}( \(as recorded in the source archive; the source may be corrupt\))?$/,
  );
});

test('a record that is not where it was written is a mismatch', async () => {
  const r = await checkDamaged((_, s) => s.setWritten(1, s.crc32(1), s.dataOffset(1) + 64));
  assert.equal(r.verified, false);
  assert.match(r.mismatch, /storage 1 is not where it was written/);
});

test('two records of one name fail the whole file', async () => {
  const r = await checkDamaged((file) => {
    // record data/1 renamed data/0 in its local header and in the central directory
    const bytes = fs.readFileSync(file);
    const from = Buffer.from('out/data/1');
    let renamed = 0;
    for (let at = bytes.indexOf(from); at >= 0; at = bytes.indexOf(from, at + 1)) {
      const next = bytes[at + from.length]!;
      if (next >= 0x30 && next <= 0x39) continue; // data/10, data/11, …
      bytes[at + from.length - 1] = 0x30;
      renamed++;
    }
    assert.equal(renamed, 2, 'the local header and the directory entry');
    fs.writeFileSync(file, bytes);
  });
  assert.equal(r.verified, false);
  assert.equal(r.mismatch, 'two records are named out/data/0');
});
