import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FORMATS, openReader } from '../../../main/formats/open-format.ts';
import { FileReader } from '../../../main/io/random-access.ts';
import { ZipArchive } from '../../../main/formats/zip/zip.ts';

const fixture = (p: string): string => new URL(`../../fixtures/${p}`, import.meta.url).pathname;

/**
 * How often opening a file searched for its zip end record and parsed its central directory:
 * `ZipArchive.findEnd` and `ZipArchive.open` are counted while `openReader` runs (`open` searches
 * for the end itself when not given `findEnd`'s answer). By the reads alone this cannot be told:
 * a small archive's tail, end record and central directory together, is read in one piece, and a
 * window of local headers may reach the end too.
 */
function zipReads(file: string): { endRecord: number; centralDirectory: number; format: string } {
  const [findEnd, open] = [ZipArchive.findEnd, ZipArchive.open];
  let endRecord = 0;
  let centralDirectory = 0;
  ZipArchive.findEnd = (r) => (endRecord++, findEnd(r));
  ZipArchive.open = (r, ...eocdAt) => {
    centralDirectory++;
    if (eocdAt.length === 0) endRecord++;
    return open(r, ...eocdAt);
  };
  try {
    const reading = openReader(new FileReader(file));
    reading.close();
    return { endRecord, centralDirectory, format: reading.format };
  } finally {
    [ZipArchive.findEnd, ZipArchive.open] = [findEnd, open];
  }
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
