// .npy and .npz readers, against files real numpy wrote (test/fixtures/numpy/generate.py) and a
// few archives built here byte by byte to reach edge cases numpy will not produce.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from '../../../../main/errors.ts';
import { BufferReader, FileReader } from '../../../../main/io/random-access.ts';
import { CountingReader } from '../../../helpers/counting-reader.ts';
import { makeZip } from '../../../fuzz/hostile-inputs.ts';
import { PyDict, PyList, PyTuple } from '../../../../main/formats/values/python-values.ts';
import { REBUILD_TENSOR_V2, TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { looksLikeNpy, parsePyLiteral, readNpy, readNpyHeader } from '../../../../main/formats/numpy/npy.ts';
import { isNpzArchive, readNpz, readNpzArrays } from '../../../../main/formats/numpy/npz.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';

const FIX = fileURLToPath(new URL('../../../fixtures/numpy/', import.meta.url));
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8'));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function bytesOf(t: TorchTensor): Uint8Array {
  const r = t.storage!.locate();
  return r.reader.read(r.offset, r.length);
}

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Elements as numpy's generator wrote them: 8-byte ints as strings, complex as [re, im]. */
function decode(dtype: string, b: Uint8Array): unknown[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = (size: number) => Array.from({ length: b.length / size }, (_, i) => i * size);
  switch (dtype) {
    case 'float64':
      return n(8).map((o) => dv.getFloat64(o, true));
    case 'float32':
      return n(4).map((o) => dv.getFloat32(o, true));
    case 'float16':
      return n(2).map((o) => half(dv.getUint16(o, true)));
    case 'int64':
      return n(8).map((o) => dv.getBigInt64(o, true).toString());
    case 'uint64':
      return n(8).map((o) => dv.getBigUint64(o, true).toString());
    case 'int32':
      return n(4).map((o) => dv.getInt32(o, true));
    case 'uint32':
      return n(4).map((o) => dv.getUint32(o, true));
    case 'int16':
      return n(2).map((o) => dv.getInt16(o, true));
    case 'uint16':
      return n(2).map((o) => dv.getUint16(o, true));
    case 'int8':
      return n(1).map((o) => dv.getInt8(o));
    case 'uint8':
      return [...b];
    case 'bool':
      return [...b].map((x) => x !== 0);
    case 'complex64':
      return n(8).map((o) => [dv.getFloat32(o, true), dv.getFloat32(o + 4, true)]);
    case 'complex128':
      return n(16).map((o) => [dv.getFloat64(o, true), dv.getFloat64(o + 8, true)]);
  }
  throw new Error(`no decoder for ${dtype}`);
}

function assertFails(fn: () => unknown, kind: string, includes?: RegExp): CheckpointError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof CheckpointError, `expected a CheckpointError, got ${String(err)}`);
  assert.equal(err.kind, kind, err.message);
  assert.ok(!err.message.includes('\n'), 'message is one line');
  if (includes) assert.match(err.message, includes);
  return err;
}

/** An .npy file in memory, header written as numpy does (padded so data starts at 64k). */
function npy(header: string, data: Uint8Array, version = 1): Buffer {
  const pre = version === 1 ? 10 : 12;
  let h = header;
  while ((pre + h.length + 1) % 64 !== 0) h += ' ';
  h += '\n';
  const out = Buffer.alloc(pre + h.length + data.length);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(out);
  if (version === 1) out.writeUInt16LE(h.length, 8);
  else out.writeUInt32LE(h.length, 8);
  out.write(h, pre, 'latin1');
  out.set(data, pre + h.length);
  return out;
}

// ---- .npy ------------------------------------------------------------------------------

for (const [file, e] of Object.entries<any>(expected.npy)) {
  test(`npy: ${file} (${e.descr}, ${JSON.stringify(e.shape)}, v${e.version}) reads as numpy wrote it`, () => {
    const full = path.join(FIX, file);
    const reader = new FileReader(full);
    const reading = readNpy(reader);
    try {
      assert.equal(reading.format, 'npy');
      assert.deepEqual(reading.records, { version: e.version, descr: e.descr, fortran_order: e.fortran_order ? 'True' : 'False' });
      const t = reading.root as TorchTensor;
      assert.ok(t instanceof TorchTensor);
      assert.equal(t.rebuild, REBUILD_TENSOR_V2);
      assert.equal(t.kind, 'dense');
      assert.equal(t.dtype.name, e.dtype);
      assert.deepEqual(t.shape, e.shape);
      assert.deepEqual((t.args[2] as PyTuple).items, e.shape);
      assert.equal(t.isContiguous, !e.fortran_order || e.shape.filter((d: number) => d > 1).length <= 1);
      const b = bytesOf(t);
      assert.equal(b.length, t.nbytes);
      assert.equal(sha(b), e.sha256_stored);
      if (e.values && !e.fortran_order) assert.deepEqual(decode(e.dtype, b), e.values);
      const h = readNpyHeader(reader);
      assert.equal(h.dataOffset + h.nbytes, reader.size, 'the data runs to the end of the file');
      assert.equal(h.dataOffset % 64, 0, 'numpy aligns data to 64 bytes');
    } finally {
      reading.close();
    }
  });
}

test('npy: every dtype in the brief has a fixture', () => {
  const descrs = new Set(Object.values<any>(expected.npy).map((e) => e.descr));
  for (const d of ['<f4', '<f8', '<f2', '|i1', '|u1', '<i2', '<i4', '<i8', '<u2', '<u4', '<u8', '|b1', '<c8', '<c16']) assert.ok(descrs.has(d), d);
});

test('npy: Fortran order gives column-major strides over the same bytes', () => {
  const r = readNpy(new FileReader(path.join(FIX, 'fortran.npy')));
  const t = r.root as TorchTensor;
  assert.deepEqual(t.shape, [2, 3, 4]);
  assert.deepEqual(t.stride, [1, 2, 6]);
  assert.equal(t.isContiguous, false);
  // element [i, j, k] sits at i + 2j + 6k; numpy's values are C order: 3 * (12i + 4j + k) - 20
  const v = decode('int32', bytesOf(t)) as number[];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) assert.equal(v[i + 2 * j + 6 * k], 3 * (12 * i + 4 * j + k) - 20);
  r.close();
  const e = expected.npy['fortran.npy'];
  assert.deepEqual(e.values.slice(0, 3), [-20, -17, -14]);
});

test('npy: files numpy writes that this reader refuses, each with one clear error', () => {
  const why: Record<string, RegExp> = {
    'big_endian.npy': /big-endian.*'>f4'/,
    'object.npy': /object arrays/,
    'structured.npy': /structured/,
    'unicode.npy': /'<U2' has no torch equivalent/,
    'truncated.npy': /truncated/,
  };
  for (const [file, kind] of Object.entries<string>(expected.npy_errors)) {
    const full = path.join(FIX, file);
    const reader = new FileReader(full);
    try {
      const err = assertFails(() => readNpy(reader), kind, why[file]);
      assert.ok(err.message.startsWith(full), err.message);
    } finally {
      reader.close();
    }
  }
});

test('npy: headers built by hand (Python 2 longs, v2, bad dicts, bad versions)', () => {
  const f4 = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
  const read = (b: Buffer) => readNpy(new BufferReader(b, 'x.npy'));
  // Python 2 numpy wrote `3L`
  const py2 = read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3L,), }", f4));
  assert.deepEqual((py2.root as TorchTensor).shape, [3]);
  const v2 = read(npy('{"descr": "<f4", "fortran_order": False, "shape": (3,)}', f4, 2));
  assert.equal(v2.records['version'], '2.0');
  assert.deepEqual(decode('float32', bytesOf(v2.root as TorchTensor)), [1, 2, 3]);
  // a 1-byte type with any byte-order mark is fine
  assert.equal((read(npy("{'descr': '>u1', 'fortran_order': False, 'shape': (12,), }", f4)).root as TorchTensor).dtype.name, 'uint8');
  // trailing bytes are noted, not fatal
  assert.match(read(Buffer.concat([npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4)])).notes[0]!, /4 bytes follow/);
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}", f4)), 'not-a-checkpoint', /keys/);
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", f4)), 'not-a-checkpoint', /fortran_order/);
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': [3], }", f4)), 'not-a-checkpoint', /shape/);
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", f4)), 'not-a-checkpoint', /shape/);
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f4)), 'truncated');
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), ", f4)), 'not-a-checkpoint', /npy header is invalid/);
  assertFails(() => read(npy("__import__('os').system('x')", f4)), 'not-a-checkpoint', /unexpected/);
  assertFails(() => read(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4, 4)), 'unsupported', /version 4\.0/);
  assertFails(() => read(npy("{'descr': '=f4', 'fortran_order': False, 'shape': (3,), }", f4)), 'unsupported', /native byte order/);
  assertFails(() => read(npy("{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }", f4)), 'unsupported', /no torch equivalent/);
  const huge = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0, 0, 0, 0, 0x40]);
  assertFails(() => read(huge), 'too-large');
  assertFails(() => read(Buffer.from('PK\x03\x04 not npy at all')), 'not-a-checkpoint', /not a \.npy/);
  assert.equal(looksLikeNpy(new BufferReader(npy('{}', f4))), true);
  assert.equal(looksLikeNpy(new BufferReader(Buffer.from('\x93NUMP'))), false);
});

test('parsePyLiteral reads the literals npy headers hold and nothing else', () => {
  const d = parsePyLiteral(`{'a': (1, 2), "b": [True, None, -3], 'c': (), 'd': (5,), 'e': (7), 'f': 'x\\'y\\x41\\u00e9'}`);
  assert.ok(d instanceof PyDict);
  assert.deepEqual((d.get('a') as PyTuple).items, [1, 2]);
  assert.deepEqual((d.get('b') as PyList).items, [true, null, -3]);
  assert.deepEqual((d.get('c') as PyTuple).items, []);
  assert.deepEqual((d.get('d') as PyTuple).items, [5]);
  assert.equal(d.get('e'), 7);
  assert.equal(d.get('f'), "x'yAé");
  assert.equal(parsePyLiteral('123456789012345678901234567890'), 123456789012345678901234567890n);
  for (const bad of ['{', "{'a' 1}", 'foo()', '1 2', "'abc", '1.5', 'lambda: 0', '('.repeat(100) + ')'.repeat(100)]) {
    assert.throws(() => parsePyLiteral(bad), Error, bad);
  }
  assert.throws(() => parsePyLiteral('3L'), /trailing/, 'L only for Python 2 headers');
});

// ---- .npz ------------------------------------------------------------------------------

for (const file of ['savez.npz', 'savez_compressed.npz']) {
  test(`npz: ${file} reads every array lazily, in archive order`, () => {
    const e = expected.npz[file];
    const reader = new CountingReader(new FileReader(path.join(FIX, file)));
    const reading = readNpz(reader);
    try {
      assert.equal(reading.format, 'npz');
      assert.equal(reading.records['compression'], e.compressed ? 'deflate' : 'stored');
      assert.equal(reading.records['arrays'], String(e.order.length));
      const root = reading.root as PyDict;
      assert.deepEqual(
        root.entries.map(([k]) => k),
        e.order,
      );
      const opened = reader.reads.length;
      if (!e.compressed) {
        // no read at open touched any array's bytes (apart from the zip reader's search of the
        // last 64 KiB for its end record, which in a file this small is all of it)
        const tail = Math.min(reader.size, 22 + 0xffff);
        // and the zip reader's 64 KiB local-header windows among small records (zip.ts `localHeader`,
        // which spares a 100,000-tensor file 100,000 reads): those start at a record's local header
        const headers = new Set(ZipArchive.open(new FileReader(path.join(FIX, file))).entries.map((en) => en.localHeaderOffset));
        const reads = reader.reads.filter(([o, l]) => !(l === tail && o + l === reader.size) && !(headers.has(o) && l > 30));
        assert.ok(reads.length < reader.reads.length);
        for (const [, v] of root.entries) {
          const r = (v as TorchTensor).storage!.locate();
          if (r.length)
            assert.ok(
              reads.every(([o, l]) => o + l <= r.offset || o >= r.offset + r.length),
              `${String(v)} bytes unread at open`,
            );
        }
      }
      for (const [k, v] of root.entries) {
        const t = v as TorchTensor;
        const a = e.arrays[k as string];
        assert.equal(t.dtype.name, a.dtype, k as string);
        assert.deepEqual(t.shape, a.shape);
        assert.equal(t.storage!.key, k);
        assert.equal(sha(bytesOf(t)), a.sha256_stored, `${k} bytes`);
        if (a.values && !a.fortran_order) assert.deepEqual(decode(a.dtype, bytesOf(t)), a.values);
        if (a.fortran_order) assert.deepEqual(t.stride, [1, 2, 6]);
      }
      assert.ok(reader.reads.length > opened, 'bytes are read when asked for');
    } finally {
      reading.close();
    }
  });
}

test('readNpzArrays loads small sets eagerly, Fortran arrays reordered to C order', () => {
  for (const file of ['savez.npz', 'savez_compressed.npz']) {
    const e = expected.npz[file];
    const arrays = readNpzArrays(path.join(FIX, file));
    assert.deepEqual([...arrays.keys()], e.order);
    for (const [k, a] of arrays) {
      assert.equal(a.dtype, e.arrays[k].dtype);
      assert.deepEqual(a.shape, e.arrays[k].shape);
      assert.equal(sha(a.data), e.arrays[k].sha256_c, `${file} ${k}`);
    }
    const f = arrays.get('fortran')!;
    assert.deepEqual(decode('int32', f.data), expected.npy['fortran.npy'].values);
  }
  const big = readNpzArrays(path.join(FIX, 'savez_compressed.npz')).get('big')!;
  const vals = decode('float32', big.data) as number[];
  assert.equal(vals.length, 20000);
  assert.deepEqual([vals[0], vals[1000], vals[19000], vals[19001]], [0, 1, 19, 0]);
});

test('npz with an object array: the numeric member is read, the object array skipped with its reason', () => {
  const reader = new FileReader(path.join(FIX, 'object.npz'));
  const reading = readNpz(reader);
  assert.deepEqual(
    (reading.root as PyDict).entries.map(([k]) => k),
    ['ok'],
  );
  assert.deepEqual(reading.notes, [
    "skipped member obj.npy (object arrays (descr '|O') hold pickled Python objects and are not read; save plain numeric arrays instead)",
  ]);
  reader.close();
});

test('npz: a deflated member is inflated only as far as its header at open', () => {
  // 1 MiB of random bytes does not compress, so the member is ~1 MiB on disk too
  const data = randomBytes(1 << 20);
  const member = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1048576,), }", data);
  const file = makeZip([
    { name: 'w.npy', raw: member, deflate: true },
    { name: 'note.txt', raw: Buffer.from('hi') },
  ]);
  const reader = new CountingReader(new BufferReader(file, 'big.npz'));
  const reading = readNpz(reader);
  // besides the zip reader's 4 KiB tail search, open reads the directory, the local header
  // and a 4 KiB compressed prefix, not the ~1 MiB member
  const readAtOpen = reader.reads.filter(([o, l]) => !(l === 4096 && o + l === reader.size)).reduce((a, [, l]) => a + l, 0);
  assert.ok(readAtOpen < 5000, `read ${readAtOpen} bytes at open`);
  assert.ok(reading.notes.some((n) => n.includes('note.txt')));
  const t = (reading.root as PyDict).get('w') as TorchTensor;
  const r = t.storage!.locate();
  assert.ok(r.reader instanceof BufferReader);
  assert.equal(sha(r.reader.read(r.offset, r.length)), sha(data));
  assert.equal(t.storage!.locate().reader.read(0, 6).length, 6, 'locate again works');
});

test('npz: damaged or oversized members fail with clear errors', () => {
  const f4 = new Uint8Array(new Float32Array([1, 2]).buffer);
  const member = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4);
  // declares more than 1 GiB inflated: the header still reads, the bytes are refused
  const liar = makeZip([{ name: 'a.npy', raw: member, deflate: true, declaredSize: 2 ** 31 }]);
  const reading = readNpz(new BufferReader(liar, 'liar.npz'));
  const t = (reading.root as PyDict).get('a') as TorchTensor;
  assertFails(() => t.storage!.locate(), 'too-large', /a\.npy/);
  // a damaged deflate stream
  const good = makeZip([{ name: 'a.npy', raw: member, deflate: true }]);
  const bad = Buffer.from(good);
  bad.fill(0xff, 30 + 5, 30 + 5 + 8);
  assertFails(() => readNpz(new BufferReader(bad, 'bad.npz')), 'corrupt-zip', /bad\.npz:a\.npy/);
  // a stored member whose header says more data than the member holds
  const short = makeZip([{ name: 'a.npy', raw: member.subarray(0, member.length - 4) }]);
  assertFails(() => readNpz(new BufferReader(short, 'short.npz')), 'truncated');
  // a member that is not npy
  const notNpy = makeZip([{ name: 'a.npy', raw: Buffer.from('hello world, not an array') }]);
  assertFails(() => readNpz(new BufferReader(notNpy, 'n.npz')), 'not-a-checkpoint', /not a \.npy/);
  // isNpzArchive tells npz from other zips
  assert.equal(isNpzArchive(ZipArchive.open(new BufferReader(good))), true);
  assert.equal(isNpzArchive(ZipArchive.open(new BufferReader(makeZip([{ name: 'archive/data.pkl', raw: Buffer.from('x') }])))), false);
});

test('mutated and truncated npy and npz files fail only with CheckpointErrors', () => {
  let seed = 99;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const tryRead = (read: () => { root: unknown }) => {
    try {
      const r = read();
      const all = r.root instanceof PyDict ? r.root.entries.map(([, v]) => v) : [r.root];
      for (const t of all) bytesOf(t as TorchTensor);
    } catch (e) {
      assert.ok(e instanceof CheckpointError, `crash: ${String(e)}`);
      assert.ok(!e.message.includes('\n'));
    }
  };
  for (const [file, read] of [
    ['fortran.npy', readNpy],
    ['v3.npy', readNpy],
    ['savez.npz', readNpz],
    ['savez_compressed.npz', readNpz],
  ] as const) {
    const original = fs.readFileSync(path.join(FIX, file));
    for (let cut = 0; cut < original.length; cut += 5) tryRead(() => read(new BufferReader(original.subarray(0, cut), file)));
    for (let i = 0; i < 1000; i++) {
      const b = Buffer.from(original);
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      tryRead(() => read(new BufferReader(b, file)));
    }
  }
});
