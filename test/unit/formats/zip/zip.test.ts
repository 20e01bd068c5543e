// The zip reader's end-record search: the last 4 KiB first, the full 64 KiB comment window after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { BufferReader } from '../../../../main/io/random-access.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';

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
