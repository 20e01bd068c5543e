import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FORMATS, openReader } from '../../../main/formats/open-format.ts';
import { FileReader } from '../../../main/io/random-access.ts';
import { ZipArchive } from '../../../main/formats/zip/zip.ts';
import { CountingReader } from '../../helpers/counting-reader.ts';

const fixture = (p: string): string => new URL(`../../fixtures/${p}`, import.meta.url).pathname;

/** How often opening a file read its zip end record (its 22 bytes) and its central directory (whole). */
function zipReads(file: string): { endRecord: number; centralDirectory: number; format: string } {
  const plain = new FileReader(file);
  const eocdAt = ZipArchive.findEnd(plain)!;
  const eocd = Buffer.from(plain.read(eocdAt, 22));
  const [cdSize, cdOffset] = [eocd.readUInt32LE(12), eocd.readUInt32LE(16)];
  plain.close();
  const reader = new CountingReader(new FileReader(file));
  const reading = openReader(reader);
  reading.close();
  return {
    endRecord: reader.reads.filter(([o, l]) => o === eocdAt && l === 22).length,
    centralDirectory: reader.reads.filter(([o, l]) => o === cdOffset && l === cdSize).length,
    format: reading.format,
  };
}

for (const [file, format] of [
  ['torch/cpu_state_dict.pt', 'torch-zip'],
  ['numpy/savez.npz', 'npz'],
] as const) {
  test(`${format}: the zip end record and central directory are read once per open (${file})`, () => {
    const r = zipReads(fixture(file));
    assert.equal(r.format, format);
    assert.equal(r.endRecord, 1, 'end record');
    assert.equal(r.centralDirectory, 1, 'central directory');
  });
}

test('the registry lists each single-container format once, LFS pointers first and bare pickles last', () => {
  const names = FORMATS.map((f) => f.name);
  assert.equal(new Set(names).size, names.length);
  assert.equal(names[0], 'lfs-pointer');
  assert.equal(names.at(-1), 'pickle');
});
