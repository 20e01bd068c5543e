// .npz files with members torch has no dtype for (issue 16): the numeric members are read with
// the values numpy reads, the others are listed as skipped with their reason. Fixtures from
// test/fixtures/numpy/generate_mixed.py (real numpy 1.24 and scipy.sparse.save_npz).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from '../../../../main/errors.ts';
import { npyDtype } from '../../../../main/formats/numpy/npy.ts';
import { readNpz, readNpzArrays } from '../../../../main/formats/numpy/npz.ts';
import type { PyDict } from '../../../../main/formats/values/python-values.ts';
import { BufferReader, FileReader } from '../../../../main/io/random-access.ts';
import { makeZip } from '../../../fuzz/hostile-inputs.ts';

const FIX = fileURLToPath(new URL('../../../fixtures/numpy/', import.meta.url));
interface Described {
  numeric: { name: string; dtype: string; shape: number[]; values: number[] }[];
  skipped: { name: string; descr: string }[];
}
const expected = JSON.parse(readFileSync(join(FIX, 'mixed_expected.json'), 'utf8')) as Record<string, Described>;

function decode(dtype: string, data: Uint8Array): number[] {
  const b = Buffer.from(data);
  const at = (size: number, get: (o: number) => number | bigint): number[] => Array.from({ length: b.length / size }, (_, i) => Number(get(i * size)));
  if (dtype === 'float32') return at(4, (o) => b.readFloatLE(o));
  if (dtype === 'int32') return at(4, (o) => b.readInt32LE(o));
  if (dtype === 'int64') return at(8, (o) => b.readBigInt64LE(o));
  throw new Error(dtype);
}

for (const file of ['mixed.npz', 'sparse_csr.npz']) {
  test(`${file}: numeric members read as numpy reads them, the rest skipped with a reason`, () => {
    const want = expected[file]!;
    const arrays = readNpzArrays(join(FIX, file));
    assert.deepEqual(
      [...arrays.keys()],
      want.numeric.map((n) => n.name),
    );
    for (const n of want.numeric) {
      const a = arrays.get(n.name)!;
      assert.equal(a.dtype, n.dtype, n.name);
      assert.deepEqual(a.shape, n.shape, n.name);
      assert.deepEqual(decode(a.dtype, a.data), n.values, n.name);
    }
    const reader = new FileReader(join(FIX, file));
    const reading = readNpz(reader);
    reader.close();
    assert.equal(reading.records['skipped'], String(want.skipped.length));
    assert.deepEqual(
      reading.notes.map((t) => /^skipped member (\w+)\.npy \(/.exec(t)?.[1]),
      want.skipped.map((s) => s.name),
    );
    for (const s of want.skipped) {
      const note = reading.notes.find((t) => t.startsWith(`skipped member ${s.name}.npy`))!;
      if (s.descr === 'structured') assert.match(note, /structured arrays/);
      else if (s.descr === '|O') assert.match(note, /object arrays \(descr '\|O'\) hold pickled Python objects/);
      else assert.ok(note.includes(`numpy dtype '${s.descr}' has no torch equivalent`), note);
    }
    assert.equal((reading.root as PyDict).size, want.numeric.length);
  });
}

test("'|O8' object arrays (older numpy) get the same message as '|O'", () => {
  const message = (descr: string): string => {
    try {
      npyDtype('a.npy', descr);
    } catch (e) {
      assert.ok(e instanceof CheckpointError);
      return e.message.replace(descr, 'D');
    }
    return assert.fail('refused');
  };
  assert.equal(message('|O8'), message('|O'));
});

test('an npz with no numeric member at all is refused, naming each member and why', () => {
  // the object member of object.npz alone
  const members = [{ name: 'obj.npy', raw: extractMember(readFileSync(join(FIX, 'object.npz')), 'obj.npy') }];
  const reader = new BufferReader(makeZip(members), 'only-objects.npz');
  assert.throws(
    () => readNpz(reader),
    (e: unknown) =>
      e instanceof CheckpointError &&
      e.kind === 'unsupported' &&
      e.message ===
        "only-objects.npz: none of its 1 arrays has a torch dtype: obj.npy (object arrays (descr '|O') hold pickled Python objects and are not read; save plain numeric arrays instead)",
  );
});

function extractMember(zip: Buffer, name: string): Buffer {
  // stored members: the local header (30 bytes + name + extra) precedes the data
  const at = zip.indexOf(Buffer.from(name));
  const header = at - 30;
  const size = zip.readUInt32LE(header + 18);
  const start = header + 30 + zip.readUInt16LE(header + 26) + zip.readUInt16LE(header + 28);
  return zip.subarray(start, start + size);
}
