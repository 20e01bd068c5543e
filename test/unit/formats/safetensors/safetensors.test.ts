// safetensors and shard-index readers, against files written by the real safetensors and
// huggingface_hub libraries (test/fixtures/safetensors/generate.py), byte-edited malformed
// copies that the reference implementation rejects, and the real corpus files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from '../../../../main/errors.ts';
import { BufferReader, FileReader } from '../../../../main/io/random-access.ts';
import { CountingReader } from '../../../helpers/counting-reader.ts';
import { PyDict, PyTuple } from '../../../../main/formats/values/python-values.ts';
import { REBUILD_TENSOR_V2, TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { looksLikeSafetensors, readSafetensors, readSafetensorsHeader } from '../../../../main/formats/safetensors/safetensors.ts';
import { JsonFloat, JsonObject, parseOrderedJson } from '../../../../main/formats/safetensors/ordered-json.ts';
import { readSafetensorsShards, readShardIndex } from '../../../../main/formats/safetensors/shard-index.ts';
import { CORPUS_DIR, sharedSkipReason } from '../../../helpers/shared-dir.ts';
import { prng } from '../../../helpers/prng.ts';

const FIX = fileURLToPath(new URL('../../../fixtures/safetensors/', import.meta.url));
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8'));

// ---- helpers ---------------------------------------------------------------------------

function open(file: string): ReturnType<typeof readSafetensors> {
  return readSafetensors(new FileReader(file));
}

function tensors(root: unknown): Map<string, TorchTensor> {
  assert.ok(root instanceof PyDict);
  return new Map(root.entries.map(([k, v]) => [k as string, v as TorchTensor]));
}

function bytesOf(t: TorchTensor): Uint8Array {
  const r = t.storage!.locate();
  return r.reader.read(r.offset, r.length);
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A minifloat with `m` mantissa bits and `bias`, no infinities (the fn / fnuz float8s). */
function minifloat(b: number, m: number, bias: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b & 0x7f) >> m;
  const f = b & ((1 << m) - 1);
  return e === 0 ? s * (f / 2 ** m) * 2 ** (1 - bias) : s * (1 + f / 2 ** m) * 2 ** (e - bias);
}

/** Decodes little-endian elements the way torch's `.tolist()` (or `.float().tolist()`) shows them. */
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
    case 'bfloat16':
      return n(2).map((o) => new Float32Array(new Uint32Array([dv.getUint16(o, true) << 16]).buffer)[0]);
    case 'int64':
      return n(8).map((o) => dv.getBigInt64(o, true).toString());
    case 'uint64':
      return n(8).map((o) => dv.getBigUint64(o, true).toString());
    case 'int32':
      return n(4).map((o) => dv.getInt32(o, true));
    case 'uint32':
      return n(4).map((o) => String(dv.getUint32(o, true)));
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
    case 'float8_e4m3fn':
      return [...b].map((x) => minifloat(x, 3, 7));
    case 'float8_e5m2':
      return [...b].map((x) => half(x << 8));
    case 'float8_e4m3fnuz':
      return [...b].map((x) => minifloat(x, 3, 8));
    case 'float8_e5m2fnuz':
      return [...b].map((x) => minifloat(x, 2, 16));
    case 'float8_e8m0fnu':
      return [...b].map((x) => 2 ** (x - 127));
  }
  throw new Error(`no decoder for ${dtype}`);
}

/** A safetensors file in memory from a header text and data bytes. */
function st(header: string, data: Uint8Array | number = 0, name = 'mem.safetensors'): BufferReader {
  const h = Buffer.from(header, 'utf8');
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = Buffer.alloc(8 + h.length + d.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(d, 8 + h.length);
  return new BufferReader(out, name);
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

// ---- a file with every dtype -----------------------------------------------------------

test('every safetensors dtype reads with the shape, bytes and values the real library wrote', () => {
  const exp = expected.dtypes;
  const reading = open(path.join(FIX, 'dtypes.safetensors'));
  try {
    assert.equal(reading.format, 'safetensors');
    assert.equal(reading.records['header_bytes'], String(exp.header_bytes));
    assert.equal(reading.records['metadata.format'], 'pt');
    assert.equal(reading.records['metadata.note'], 'every dtype');
    const ts = tensors(reading.root);
    assert.deepEqual([...ts.keys()], exp.order, 'header order kept');
    const tags = new Set<string>();
    for (const [name, e] of Object.entries<any>(exp.tensors)) {
      const t = ts.get(name)!;
      tags.add(e.tag);
      assert.equal(t.dtype.name, e.torch_dtype, name);
      assert.deepEqual(t.shape, e.torch_shape, name);
      assert.equal(t.kind, 'dense');
      assert.equal(t.device, 'cpu');
      const b = bytesOf(t);
      assert.equal(b.length, e.data_offsets[1] - e.data_offsets[0], name);
      assert.equal(sha(b), e.sha256, `${name} bytes`);
      if (e.values) assert.deepEqual(decode(t.dtype.name, b), e.values, `${name} values`);
    }
    for (const tag of [
      'F64',
      'F32',
      'F16',
      'BF16',
      'I64',
      'I32',
      'I16',
      'I8',
      'U8',
      'U16',
      'U32',
      'U64',
      'BOOL',
      'C64',
      'F8_E4M3',
      'F8_E5M2',
      'F8_E4M3FNUZ',
      'F8_E5M2FNUZ',
      'F8_E8M0',
      'F4',
    ]) {
      assert.ok(tags.has(tag), `fixture covers ${tag}`);
    }
  } finally {
    reading.close();
  }
});

test('tensors are rebuilt as _rebuild_tensor_v2 over one storage each, keyed by name', () => {
  const reading = open(path.join(FIX, 'dtypes.safetensors'));
  try {
    const ts = tensors(reading.root);
    const f32 = ts.get('f32')!;
    assert.equal(f32.rebuild, REBUILD_TENSOR_V2);
    assert.equal(f32.args[0], f32.storage);
    assert.equal(f32.args[1], 0);
    assert.deepEqual((f32.args[2] as PyTuple).items, [2, 3]);
    assert.deepEqual((f32.args[3] as PyTuple).items, [3, 1]);
    assert.equal(f32.args[4], false);
    assert.ok(f32.args[5] instanceof PyDict && f32.args[5].ordered && f32.args[5].size === 0);
    assert.equal(f32.storage!.key, 'f32');
    assert.equal(f32.storage!.storageType, 'FloatStorage');
    assert.equal(f32.storage!.location, 'cpu');
    assert.equal(f32.storage!.numel, 6);
    assert.equal(ts.get('bf16')!.storage!.storageType, 'BFloat16Storage');
    // dtypes without a legacy storage class get an untyped (byte) storage
    const u16 = ts.get('u16')!;
    assert.equal(u16.storage!.storageType, 'UntypedStorage');
    assert.equal(u16.storage!.dtype.name, 'uint8');
    assert.equal(u16.storage!.numel, 4);
    assert.equal(u16.storage!.nbytes, u16.nbytes);
    // 0-d and empty tensors
    const scalar = ts.get('scalar')!;
    assert.deepEqual([scalar.shape, scalar.stride, scalar.numel], [[], [], 1]);
    assert.deepEqual(decode('float32', bytesOf(scalar)), [2.5]);
    const e3 = ts.get('empty3d')!;
    assert.deepEqual([e3.shape, e3.stride, e3.nbytes], [[2, 0, 3], [3, 3, 1], 0]);
    assert.equal(bytesOf(e3).length, 0);
    // two empty float32 tensors at the same offset share one storage
    assert.equal(ts.get('empty')!.storage, ts.get('empty_b')!.storage);
    assert.notEqual(ts.get('f32')!.storage, ts.get('f16')!.storage);
    // F4: torch packs two values per element
    const f4 = ts.get('f4')!;
    assert.equal(f4.dtype.name, 'float4_e2m1fn_x2');
    assert.deepEqual(f4.shape, [2, 3]);
    assert.ok(reading.notes.some((n) => n.includes('F4')));
  } finally {
    reading.close();
  }
});

test('opening reads only the length and the header, never tensor bytes', () => {
  const file = path.join(FIX, 'dtypes.safetensors');
  const reader = new CountingReader(new FileReader(file));
  const reading = readSafetensors(reader);
  const end = 8 + expected.dtypes.header_bytes;
  assert.ok(
    reader.reads.every(([o, l]) => o + l <= end),
    JSON.stringify(reader.reads),
  );
  const before = reader.reads.length;
  const t = tensors(reading.root).get('f64')!;
  assert.equal(reader.reads.length, before, 'locate() itself reads nothing');
  const r = t.storage!.locate();
  assert.equal(r.offset, end + expected.dtypes.tensors.f64.data_offsets[0]);
  reading.close();
});

test('looksLikeSafetensors', () => {
  const yes = (p: string) => {
    const r = new FileReader(p);
    try {
      return looksLikeSafetensors(r);
    } finally {
      r.close();
    }
  };
  assert.equal(yes(path.join(FIX, 'dtypes.safetensors')), true);
  assert.equal(yes(path.join(FIX, 'no_tensors.safetensors')), true);
  assert.equal(yes(path.join(FIX, 'sharded', 'model.safetensors.index.json')), false);
  assert.equal(yes(path.join(FIX, 'sharded_bin', 'pytorch_model-00001-of-00002.bin')), false);
  assert.equal(yes(path.join(FIX, '../numpy/dtype_f4.npy')), false);
  assert.equal(yes(path.join(FIX, 'malformed', 'too_small.safetensors')), false);
  assert.equal(yes(path.join(FIX, 'malformed', 'huge_header.safetensors')), false);
});

test('names that look like integers keep their header order, and an empty file has no tensors', () => {
  const r = open(path.join(FIX, 'numeric_names.safetensors'));
  assert.deepEqual([...tensors(r.root).keys()], expected.small['numeric_names.safetensors'].order);
  assert.deepEqual([...tensors(r.root).keys()], ['10', '2', 'a']);
  assert.deepEqual(decode('float32', bytesOf(tensors(r.root).get('2')!)), [2]);
  r.close();
  const e = open(path.join(FIX, 'no_tensors.safetensors'));
  assert.equal((e.root as PyDict).size, 0);
  e.close();
});

// ---- malformed files -------------------------------------------------------------------

for (const [name, c] of Object.entries<any>(expected.malformed)) {
  test(`malformed: ${name} (${c.what}) is rejected like the reference does`, () => {
    assert.notEqual(c.reference, 'accepted', 'the reference rejects it too');
    const file = path.join(FIX, 'malformed', `${name}.safetensors`);
    const reader = new FileReader(file);
    try {
      const err = assertFails(() => readSafetensors(reader), c.kind);
      assert.ok(err.message.startsWith(file), err.message);
      assert.equal(err.file, file);
    } finally {
      reader.close();
    }
  });
}

test('entries checked as they are parsed: a JSON error or duplicate anywhere still wins over an earlier bad entry', () => {
  // the verdict is the one of checking the whole parsed header: parse errors first, then the first bad entry in order
  const bad = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}';
  const good = '"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
  assertFails(() => readSafetensors(st(`{${bad},${good},"c":}`, 4)), 'not-a-checkpoint', /bad JSON/);
  assertFails(() => readSafetensors(st(`{${bad},${good},${good}}`, 4)), 'not-a-checkpoint', /duplicate key "b"/);
  assertFails(
    () => readSafetensors(st(`{${good},${bad},"c":{"dtype":"Q9","shape":[],"data_offsets":[0,0]}}`, 4)),
    'not-a-checkpoint',
    /tensor "a" is F32 \[2\]/,
  );
  assertFails(() => readSafetensors(st(`{"c":{"dtype":"Q9","shape":[],"data_offsets":[0,0]},${bad}}`, 4)), 'unsupported', /unknown safetensors dtype "Q9"/);
  const meta = readSafetensors(st(`{"__metadata__":{"format":"pt"},${good}}`, 4));
  assert.equal(meta.records['metadata.format'], 'pt');
  // duplicates are found by the reading's own dict for good entries, by a set after a bad one
  assertFails(() => readSafetensors(st(`{${good},${bad},${good}}`, 4)), 'not-a-checkpoint', /duplicate key "b"/);
  assertFails(() => readSafetensors(st(`{${bad},${bad}}`, 4)), 'not-a-checkpoint', /duplicate key "a"/);
  assertFails(() => readSafetensors(st(`{"__metadata__":null,${good},"__metadata__":null}`, 4)), 'not-a-checkpoint', /duplicate key "__metadata__"/);
  // the header alone (re-shard's read-back) finds them too
  assertFails(() => readSafetensorsHeader(st(`{${good},${good}}`, 4)), 'not-a-checkpoint', /duplicate key "b"/);
});

test('tensors listed out of offset order tile as the reference sorts them; a hole is still found', () => {
  const at = (name: string, from: number) => `"${name}":{"dtype":"F32","shape":[1],"data_offsets":[${from},${from + 4}]}`;
  const r = readSafetensors(st(`{${at('z', 8)},${at('y', 4)},${at('x', 0)}}`, 12));
  assert.deepEqual(
    (r.root as PyDict).entries.map(([k]) => k),
    ['z', 'y', 'x'],
  );
  assertFails(() => readSafetensors(st(`{${at('z', 12)},${at('x', 0)},${at('y', 4)}}`, 16)), 'not-a-checkpoint', /tensor "z" begins at 12 .* hole/);
});

test('tensors of one shape share one frozen shape and stride array', () => {
  const at = (name: string, from: number) => `"${name}":{"dtype":"F32","shape":[1],"data_offsets":[${from},${from + 4}]}`;
  const r = readSafetensors(st(`{${at('a', 0)},${at('b', 4)}}`, 8));
  const [a, b] = (r.root as PyDict).entries.map(([, v]) => v as TorchTensor);
  assert.ok(a && b);
  assert.equal(a.shape, b.shape);
  assert.equal(a.stride, b.stride);
  assert.ok(Object.isFrozen(a.shape) && Object.isFrozen(a.stride));
  assert.throws(() => (a.shape as number[]).push(2), TypeError);
});

test('malformed headers built in memory: each is one clear CheckpointError', () => {
  const f32 = (shape: string, offs: string, dtype = 'F32') => `{"a":{"dtype":"${dtype}","shape":${shape},"data_offsets":${offs}}}`;
  assertFails(() => readSafetensors(st(f32('[3]', '[0,3]', 'F4'), 2)), 'not-a-checkpoint', /MisalignedSlice/);
  assertFails(() => readSafetensors(st(f32('[2,1]', '[0,1]', 'F4'), 1)), 'unsupported', /even last dimension/);
  assertFails(() => readSafetensors(st(f32('[8]', '[0,6]', 'F6_E2M3'), 6)), 'unsupported', /F6_E2M3/);
  assertFails(
    () => readSafetensors(st(f32('[2]', '[0,8]').replace('}}', '},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'), 16)),
    'not-a-checkpoint',
    /duplicate key "a"/,
  );
  assertFails(() => readSafetensors(st(f32('[2]', '[0,18446744073709551616]'), 8)), 'not-a-checkpoint', /data_offsets/);
  assertFails(() => readSafetensors(st(f32('[4294967296,4294967296,4294967296]', '[0,8]'), 8)), 'not-a-checkpoint', /overflow/);
  assertFails(() => readSafetensors(st(f32('[2]', '[0,8,12]'), 8)), 'not-a-checkpoint', /data_offsets/);
  assertFails(() => readSafetensors(st('{"a":3}', 0)), 'not-a-checkpoint', /tensor "a"/);
  assertFails(() => readSafetensors(st(`{"__metadata__":${'['.repeat(500)}${']'.repeat(500)}}`, 0)), 'not-a-checkpoint', /deeper/);
  assertFails(() => readSafetensors(st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\0\0', 4)), 'not-a-checkpoint', /bad JSON/);
  assertFails(() => readSafetensors(st('{"a\nb":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4)), 'not-a-checkpoint', /control character/);
  // trailing spaces (the reference pads headers to 8 bytes) and __metadata__: null are fine
  const ok = readSafetensors(st('{"__metadata__":null,"a":{"dtype":"I8","shape":[],"data_offsets":[0,1]}}   ', Uint8Array.of(0xff)));
  assert.deepEqual(decode('int8', bytesOf(tensors(ok.root).get('a')!)), [-1]);
  assert.deepEqual(Object.keys(ok.records), ['header_bytes']);
});

test('parseOrderedJson: escapes, numbers, order and strictness', () => {
  const v = parseOrderedJson(' {"b":1,"a":[1.5,-2,1e3,"x\\u00e9\\n\\"",true,null],"\\ud83d\\ude00":{}} ');
  assert.ok(v instanceof JsonObject);
  assert.deepEqual(
    v.entries.map(([k]) => k),
    ['b', 'a', '😀'],
  );
  const arr = v.get('a') as unknown[];
  assert.ok(arr[0] instanceof JsonFloat && arr[0].value === 1.5);
  assert.equal(arr[1], -2);
  assert.ok(arr[2] instanceof JsonFloat && arr[2].value === 1000);
  assert.equal(arr[3], 'xé\n"');
  assert.deepEqual(arr.slice(4), [true, null]);
  for (const bad of ['{', '{"a":1,}', '[01]', "{'a':1}", '{"a":1} x', '[1,]', '"\\q"', 'NaN', '']) {
    assert.throws(() => parseOrderedJson(bad), /bad JSON/, bad);
  }
});

test('parseOrderedJson: integers read without the pattern give what JSON.parse gives, and the pattern still decides the rest', () => {
  const ints = ['0', '-0', '7', '-12', '123456789012345', '1234567890123456', '99999999999999999999', '9007199254740993'];
  const got = parseOrderedJson(`[${ints.join(',')}]`) as unknown[];
  assert.deepEqual(got, JSON.parse(`[${ints.join(',')}]`));
  assert.ok(Object.is(got[1], -0), '-0 stays -0');
  const floats = parseOrderedJson('[1.0,2e3,-3E-1,10.25]') as unknown[];
  assert.ok(floats.every((x) => x instanceof JsonFloat));
  for (const bad of ['[00]', '[-]', '[-01]', '[1.]', '[1e]', '[.5]', '[+1]']) assert.throws(() => parseOrderedJson(bad), /bad JSON/, bad);
});

// ---- shard sets ------------------------------------------------------------------------

test('readShardIndex parses an HF safetensors index and finds its shards', () => {
  const idx = readShardIndex(path.join(FIX, 'sharded', 'model.safetensors.index.json'));
  const exp = expected.sharded.index;
  assert.deepEqual(idx.metadata, exp.metadata);
  assert.deepEqual([...idx.weightMap], Object.entries(exp.weight_map));
  assert.deepEqual(idx.shards, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  assert.deepEqual(idx.missing, []);
});

test('readShardIndex parses a torch .bin index written by huggingface_hub', () => {
  const idx = readShardIndex(path.join(FIX, 'sharded_bin', 'pytorch_model.bin.index.json'));
  assert.deepEqual(idx.shards, ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']);
  assert.deepEqual(idx.missing, []);
  assert.equal(idx.metadata['total_size'], expected.sharded.bin_index.metadata.total_size);
  assert.equal(idx.weightMap.size, 5);
  // the safetensors combiner refuses torch shards, pointing to the torch reader
  assertFails(() => readSafetensorsShards(idx.path), 'unsupported', /not a safetensors file/);
});

test('readSafetensorsShards joins two shards in weight_map order, with the bytes the library wrote', () => {
  const indexPath = path.join(FIX, 'sharded', 'model.safetensors.index.json');
  const reading = readSafetensorsShards(indexPath);
  const exp = expected.sharded;
  const ts = tensors(reading.root);
  assert.deepEqual([...ts.keys()], Object.keys(exp.index.weight_map));
  for (const [name, e] of Object.entries<any>(exp.tensors)) {
    const t = ts.get(name)!;
    assert.equal(t.dtype.name, e.torch_dtype);
    assert.deepEqual(t.shape, e.shape);
    const r = t.storage!.locate();
    assert.equal(path.basename(r.reader.name), e.shard);
    assert.equal(sha(r.reader.read(r.offset, r.length)), e.sha256, name);
  }
  assert.equal(reading.records['index'], 'model.safetensors.index.json');
  assert.equal(reading.records['shards'], '2');
  assert.equal(reading.records['index.total_size'], '1040');
  assert.equal(reading.records['metadata.format'], 'pt');
  assert.deepEqual(reading.notes, [], 'total_size agrees with the tensors');
  const r = ts.get('head.weight')!.storage!.locate();
  reading.close();
  assert.throws(() => r.reader.read(r.offset, 4), 'shard readers are closed');
});

test('shard sets with missing shards or tensors fail with a clear error', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shards-'));
  try {
    const index = JSON.parse(fs.readFileSync(path.join(FIX, 'sharded', 'model.safetensors.index.json'), 'utf8'));
    // no shard files at all
    const lonely = path.join(tmp, 'model.safetensors.index.json');
    fs.writeFileSync(lonely, JSON.stringify(index));
    const idx = readShardIndex(lonely);
    assert.deepEqual(idx.missing, idx.shards);
    assertFails(
      () => readSafetensorsShards(lonely),
      'io',
      /2 of 2 shard files are missing.*model-00001-of-00002\.safetensors, model-00002-of-00002\.safetensors/,
    );
    // shards present, but the index names a tensor the shard lacks
    for (const s of idx.shards) fs.copyFileSync(path.join(FIX, 'sharded', s), path.join(tmp, s));
    const extra = { ...index, weight_map: { ...index.weight_map, 'ghost.weight': 'model-00002-of-00002.safetensors' } };
    const bad = path.join(tmp, 'ghost.index.json');
    fs.writeFileSync(bad, JSON.stringify(extra));
    assertFails(() => readSafetensorsShards(bad), 'not-a-checkpoint', /"ghost\.weight" in model-00002-of-00002\.safetensors/);
    // a shard the index leaves out of the map is kept, with a note
    const partial = { ...index, weight_map: Object.fromEntries(Object.entries(index.weight_map).filter(([k]) => k !== 'head.weight')) };
    const p = path.join(tmp, 'partial.index.json');
    fs.writeFileSync(p, JSON.stringify(partial));
    const reading = readSafetensorsShards(p);
    assert.equal([...tensors(reading.root).keys()].at(-1), 'head.weight');
    assert.ok(reading.notes.some((n) => n.includes('does not list')));
    reading.close();
    // invalid indexes
    const write = (text: string) => {
      const f = path.join(tmp, 'x.index.json');
      fs.writeFileSync(f, text);
      return f;
    };
    assertFails(() => readShardIndex(write('{"metadata":{}}')), 'not-a-checkpoint', /weight_map/);
    assertFails(() => readShardIndex(write('{"weight_map":{"a":"../b.safetensors"}}')), 'not-a-checkpoint', /outside/);
    assertFails(() => readShardIndex(write('{"weight_map":{"a":3}}')), 'not-a-checkpoint', /not a file name/);
    assertFails(() => readShardIndex(write('not json')), 'not-a-checkpoint', /bad JSON/);
    assertFails(() => readShardIndex(path.join(tmp, 'nope.index.json')), 'io', /no such file/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// ---- the real corpus -------------------------------------------------------------------

const skip = sharedSkipReason();
const corpus = (f: string) => path.join(CORPUS_DIR, f);

test('corpus: huggingface safetensors sample (overall.safetensors)', { skip: skip ?? false }, () => {
  const r = open(corpus('huggingface__safetensors__samples__overall.safetensors'));
  const ts = tensors(r.root);
  // manifest: dtypes=U8:1,U16:1,U32:1,I8:1,F64:1,F16:1,F32:1,I16:1,I32:1; __metadata__={"test": "a"}
  assert.deepEqual(
    [...ts].map(([k, t]) => `${k}:${t.dtype.name}`),
    ['B:uint8', 'H:uint16', 'I:uint32', 'b:int8', 'd:float64', 'e:float16', 'f:float32', 'h:int16', 'i:int32'],
  );
  assert.equal(r.records['metadata.test'], 'a');
  const want: Record<string, unknown[]> = {
    B: [253, 254, 255, 0, 1, 2],
    H: [65533, 65534, 65535, 0, 1, 2],
    I: ['4294967293', '4294967294', '4294967295', '0', '1', '2'],
    b: [-3, -2, -1, 0, 1, 2],
    d: [-3, -2, -1, 0, 1, 2],
    e: [-3, -2, -1, 0, 1, 2],
    f: [-3, -2, -1, 0, 1, 2],
    h: [-3, -2, -1, 0, 1, 2],
    i: [-3, -2, -1, 0, 1, 2],
  };
  for (const [k, t] of ts) {
    assert.deepEqual(t.shape, [6]);
    assert.deepEqual(decode(t.dtype.name, bytesOf(t)), want[k], k);
  }
  r.close();
});

test('corpus: torchtune gemma checkpoint (11 F16 tensors)', { skip: skip ?? false }, () => {
  const r = open(corpus('pytorch__torchtune__gemma_hf_checkpoint.safetensors'));
  const ts = tensors(r.root);
  assert.equal(ts.size, 11);
  assert.ok([...ts.values()].every((t) => t.dtype.name === 'float16'));
  assert.ok(!Object.keys(r.records).some((k) => k.startsWith('metadata.')));
  const emb = ts.get('model.embed_tokens.weight')!;
  assert.deepEqual(emb.shape, [100, 64]);
  assert.equal(sha(bytesOf(emb)), '056fcda3e962281e25fa603a40e2c2aa587829e7c4702171f2fb13b1b7b9a732');
  assert.deepEqual(decode('float16', bytesOf(emb)).slice(0, 3), [0.263427734375, -0.9912109375, -0.21337890625]);
  const norm = ts.get('model.norm.weight')!;
  assert.deepEqual(norm.shape, [64]);
  assert.deepEqual(decode('float16', bytesOf(norm)).slice(0, 3), [0.69970703125, -1.357421875, -0.62060546875]);
  r.close();
});

test('corpus: the two LoRA adapters (PEFT GPT-2, diffusers SD-1.5)', { skip: skip ?? false }, () => {
  const peft = open(corpus('anirudh-ak__peft-gpt2__model__lora_model__adapter_model.safetensors'));
  const p = tensors(peft.root);
  assert.equal(p.size, 25);
  assert.ok([...p.values()].every((t) => t.dtype.name === 'float32'));
  assert.equal(peft.records['metadata.format'], 'pt');
  const score = p.get('base_model.model.score.weight')!;
  assert.deepEqual(score.shape, [6, 768]);
  assert.equal(sha(bytesOf(score)), 'c3a46faa5de798ac99b95b2d408eccec2b383ff1742464f1f0ea89b382c5cad7');
  const b9 = p.get('base_model.model.transformer.h.9.attn.c_attn.lora_B.weight')!;
  assert.deepEqual(b9.shape, [2304, 8]);
  assert.equal(sha(bytesOf(b9)), '5bc37de5030bf0a477a08089b3f4e32228530769eda060a4cb9dd73d3ab1e721');
  peft.close();

  const sd = open(corpus('catundchat__stable-diffusion-v1.5-lora__pytorch_lora_weights.safetensors'));
  const s = tensors(sd.root);
  assert.equal(s.size, 256);
  assert.ok([...s.values()].every((t) => t.dtype.name === 'float32'));
  assert.equal(sd.records['metadata.format'], 'pt');
  const k = s.get('down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_k_lora.down.weight')!;
  assert.deepEqual(k.shape, [4, 320]);
  assert.equal(sha(bytesOf(k)), '48332aa948db1e23fbe9d6edad414c7fe897c3b627eedc5e4128fef762d32002');
  assert.deepEqual(decode('float32', bytesOf(k)).slice(0, 2), [0.15872032940387726, 0.4687080383300781]);
  const v = s.get('up_blocks.3.attentions.2.transformer_blocks.0.attn2.processor.to_v_lora.up.weight')!;
  assert.equal(sha(bytesOf(v)), '663f120a018771faac1027aa8a7b84b6838a09cdbe720c0a5775eaf4bab55f5d');
  sd.close();
});

test('corpus: shard indexes without their shards parse, and reading them names the missing files', { skip: skip ?? false }, () => {
  const bin = readShardIndex(corpus('1rin__openllama-chinese-english-3b__pytorch_model.bin.index.json'));
  assert.equal(bin.weightMap.size, 263);
  assert.deepEqual(bin.metadata, { total_size: 13705925200 });
  assert.deepEqual(bin.shards, ['pytorch_model-00003-of-00003.bin', 'pytorch_model-00001-of-00003.bin', 'pytorch_model-00002-of-00003.bin']);
  assert.deepEqual(bin.missing, bin.shards);
  assert.equal(bin.weightMap.get('lm_head.weight'), 'pytorch_model-00003-of-00003.bin');

  const sti = corpus('jeremieconte__granite-3.1-1b-a400m-instruct__model.safetensors.index.json');
  const gr = readShardIndex(sti);
  assert.equal(gr.weightMap.size, 218);
  assert.equal(gr.metadata['total_size'], 5338513408);
  assert.deepEqual(gr.shards, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  assert.deepEqual(gr.missing, gr.shards);
  assert.equal([...gr.weightMap.keys()][1], 'model.layers.0.block_sparse_moe.input_linear.weight');
  assertFails(
    () => readSafetensorsShards(sti),
    'io',
    /2 of 2 shard files are missing beside the index: model-00001-of-00002\.safetensors, model-00002-of-00002\.safetensors/,
  );
});

test('corpus: every safetensors file in the manifest opens and its header validates', { skip: skip ?? false }, () => {
  const rows = fs
    .readFileSync(corpus('MANIFEST.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'));
  const files = rows.filter((c) => c[5] === 'safetensors').map((c) => c[0]!);
  assert.equal(files.length, 4);
  for (const f of files) {
    const reader = new FileReader(corpus(f));
    try {
      assert.ok(looksLikeSafetensors(reader), f);
      const h = readSafetensorsHeader(reader);
      // manifest notes: dtypes=TAG:count,...
      const row = rows.find((c) => c[0] === f)!;
      const m = /dtypes=([A-Z0-9_:,]+)/.exec(row[6]!)!;
      const counts = new Map<string, number>();
      for (const t of h.tensors) counts.set(t.tag, (counts.get(t.tag) ?? 0) + 1);
      const want = new Map(m[1]!.split(',').map((x) => [x.split(':')[0]!, Number(x.split(':')[1])]));
      assert.deepEqual(new Map([...counts].sort()), new Map([...want].sort()), f);
    } finally {
      reader.close();
    }
  }
});

// ---- mutation: damaged bytes give CheckpointErrors, never crashes ------------------------

test('mutated and truncated safetensors files fail only with CheckpointErrors', () => {
  const original = fs.readFileSync(path.join(FIX, 'dtypes.safetensors'));
  const rand = prng(1234);
  const tryRead = (b: Uint8Array) => {
    try {
      const r = readSafetensors(new BufferReader(b, 'm.safetensors'));
      for (const [, t] of (r.root as PyDict).entries) bytesOf(t as TorchTensor);
    } catch (e) {
      assert.ok(e instanceof CheckpointError, `crash: ${String(e)}`);
      assert.ok(!e.message.includes('\n'));
    }
  };
  for (let cut = 0; cut < original.length; cut += 7) tryRead(original.subarray(0, cut));
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(original);
    const flips = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < flips; k++) {
      // mostly inside the length and header, where the structure is
      const at = Math.floor(rand() * (rand() < 0.9 ? 8 + expected.dtypes.header_bytes : b.length));
      b[at] = Math.floor(rand() * 256);
    }
    tryRead(b);
  }
});

test('safetensors header bytes: non-ASCII names and escapes decode as UTF-8, and bytes that are not UTF-8 are refused', () => {
  // the names the reference writes raw (serde_json emits UTF-8, not \u escapes), beside escaped ones
  const r = readSafetensors(
    st(
      '{"层.weight":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"a\\u00e9😀b":{"dtype":"I8","shape":[1],"data_offsets":[1,2]},"é\\n":{"dtype":"I8","shape":[],"data_offsets":[2,3]}}',
      Uint8Array.of(1, 2, 3),
    ),
  );
  assert.deepEqual([...tensors(r.root).keys()], ['层.weight', 'aé😀b', 'é\n']);
  const header = Buffer.from('{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', 'utf8');
  header[3] = 0xff; // inside the name: not UTF-8
  const file = Buffer.alloc(8 + header.length + 1);
  file.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(file, 8);
  assertFails(() => readSafetensors(new BufferReader(file, 'bad.safetensors')), 'not-a-checkpoint', /not valid UTF-8/);
  // a bad JSON message names the byte where it stopped
  assert.throws(() => parseOrderedJson('{"é":1,}'), /bad JSON at byte 8: expected a string key/);
});

test('parseOrderedJson: short strings made once and reused give back exactly their text, past the cache size', () => {
  const words = Array.from({ length: 6000 }, (_, i) => `k${i.toString(36)}${'x'.repeat(i % 12)}`);
  const text = `[${words.map((w) => JSON.stringify(w)).join(',')},${words.map((w) => JSON.stringify(w)).join(',')},"a\\u0062c","abc","ab"]`;
  assert.deepEqual(parseOrderedJson(text), [...words, ...words, 'abc', 'abc', 'ab']);
});
