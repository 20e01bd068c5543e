// pickleValue, table-driven: (1) numbers, None and booleans come out byte for byte as CPython's
// `pickle.dumps(v, protocol=2)` writes them (the hex below is CPython 3.11's output); (2) every
// CPython-written vector of test/fixtures/pickles (all protocols) that the VM reads, written again
// by our pickler and read back, still matches its expected.json; (3) the data.pkl of every zip
// checkpoint torch 1.13 wrote under test/fixtures/torch, re-pickled, reads back to the same tree:
// same keys, tensors with the same storages, dtypes, shapes, strides and offsets.
// Known gap, marked todo below: a tuple that contains itself (through a list) loses its identity when
// re-pickled (the rich.p* vectors' `rec_tuple`). Ints over 255 bytes are written with LONG4, as CPython does.
// Not asserted: byte equality with CPython for containers and strings, or with torch's data.pkl.
// CPython's Pickler memoizes every str (a BINPUT after each BINUNICODE); ours does not, so those
// files differ in memo opcodes while holding the same values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { pickleInto, pickleValue, type PickleWriterOptions } from '../../../../main/formats/pickle/pickler.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../../../main/formats/pickle/unpickler.ts';
import { decodeStorageId, torchPickleHooks } from '../../../../main/formats/torch/torch-pickle.ts';
import { openTorchArchive, unpickleRecord } from '../../../../main/formats/torch/torch-zip.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';
import { FileReader } from '../../../../main/io/random-access.ts';
import {
  PyBytes,
  PyComplex,
  PyDict,
  PyFloat,
  PyGlobal,
  PyList,
  PyObject,
  PyPersistent,
  PySet,
  PyTuple,
  type PyValue,
} from '../../../../main/formats/values/python-values.ts';
import { TorchStorage, TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { expectedOf, manifest, matchValue, run, vectorBytes } from './helpers.ts';

const NO_STORAGES: PickleWriterOptions = {
  storageId: () => assert.fail('this value holds no storages'),
};
/** torch/serialization.py `_save`, `persistent_id`: ('storage', storage_type, key, location, numel). */
const TORCH_IDS: PickleWriterOptions = {
  storageId: (s) => new PyTuple(['storage', new PyGlobal(s.storageModule, s.storageType), s.key, s.location, s.numel]),
};

const CPYTHON_P2: Array<[label: string, value: PyValue, hex: string]> = [
  ['None', null, '80024e2e'],
  ['True', true, '8002882e'],
  ['False', false, '8002892e'],
  ['0 (BININT1)', 0, '80024b002e'],
  ['255 (BININT1)', 255, '80024bff2e'],
  ['256 (BININT2)', 256, '80024d00012e'],
  ['65535 (BININT2)', 65535, '80024dffff2e'],
  ['65536 (BININT)', 65536, '80024a000001002e'],
  ['-1 (BININT)', -1, '80024affffffff2e'],
  ['-128 (BININT)', -128, '80024a80ffffff2e'],
  ['2**31-1 (BININT)', 2 ** 31 - 1, '80024affffff7f2e'],
  ['-2**31 (BININT)', -(2 ** 31), '80024a000000802e'],
  ['2**31 (LONG1, sign byte added)', 2 ** 31, '80028a0500000080002e'],
  ['-2**31-1 (LONG1)', -(2 ** 31) - 1, '80028a05ffffff7fff2e'],
  ['2**63 (bigint)', 2n ** 63n, '80028a090000000000000080002e'],
  ['-2**63 (bigint)', -(2n ** 63n), '80028a0800000000000000802e'],
  ['2**64 (bigint)', 2n ** 64n, '80028a090000000000000000012e'],
  ['12345678901234567890 (bigint)', 12345678901234567890n, '80028a09d20a1feb8ca954ab002e'],
  ['0.0 (BINFLOAT)', new PyFloat(0), '80024700000000000000002e'],
  ['-0.0', new PyFloat(-0), '80024780000000000000002e'],
  ['1.5', new PyFloat(1.5), '8002473ff80000000000002e'],
  ['1e300', new PyFloat(1e300), '8002477e37e43c8800759c2e'],
  ['inf', new PyFloat(Infinity), '8002477ff00000000000002e'],
];

for (const [label, value, hex] of CPYTHON_P2) {
  test(`byte-exact with CPython protocol 2: ${label}`, () => {
    assert.equal(Buffer.from(pickleValue(value, NO_STORAGES)).toString('hex'), hex);
  });
}

const REFUSED: Array<[label: string, value: PyValue, error: RegExp]> = [
  ['a non-integer number', 1.5, /cannot pickle 1.5 as an int/],
  ['NEWOBJ_EX keyword arguments', new PyObject(new PyGlobal('m', 'C'), [], 'newobj', new PyDict()), /keyword arguments \(NEWOBJ_EX\)/],
];
for (const [label, value, error] of REFUSED) {
  test(`refuses ${label}`, () => {
    assert.throws(() => pickleValue(value, NO_STORAGES), error);
  });
}

test('values built in TypeScript round trip through the VM, shared objects stay shared', () => {
  const shared = new PyList([1, 'two']);
  const odict = new PyDict(true);
  odict.set('a', new PyTuple([]));
  odict.set('b', new PyTuple([1, 2, 3, 4]));
  const value = new PyDict();
  value.set('list', shared);
  value.set('again', shared);
  value.set('odict', odict);
  value.set('bytes', new PyBytes(Buffer.from([0, 255, 10])));
  value.set('bytearray', new PyBytes(Buffer.from('ab'), true));
  value.set('empty bytes', new PyBytes(new Uint8Array(0)));
  value.set('complex', new PyComplex(1.5, -2));
  value.set('set', new PySet([1, 2]));
  value.set('frozenset', new PySet(['x'], true));
  value.set('global', new PyGlobal('builtins', 'len'));
  value.set('persistent', new PyPersistent(new PyTuple(['id', 7])));
  value.set('long list', new PyList(Array.from({ length: 2500 }, (_, i) => i)));
  const back = run(pickleValue(value, NO_STORAGES)).value;
  assert.ok(back instanceof PyDict);
  const get = (k: string): PyValue => back.entries.find(([key]) => key === k)![1];
  assert.equal(get('list'), get('again'), 'one list object, memoized');
  assert.equal(describe(back), describe(value));
});

test('pickleInto hands over the bytes pickleValue gives, in chunks it reuses, and returns their length', () => {
  // many strings (chunks end where the next opcode does not fit) and bytes larger than a chunk
  const value = new PyDict();
  for (let i = 0; i < 20_000; i++) value.set(`layer.${i}.weight`, i);
  value.set('big bytes', new PyBytes(Buffer.alloc(200_000, 7)));
  value.set('after', 'the end');
  const chunks: Buffer[] = [];
  let lastChunk: Uint8Array | null = null;
  let reused = false;
  const length = pickleInto(value, NO_STORAGES, (chunk) => {
    reused ||= lastChunk !== null && chunk.buffer === lastChunk.buffer;
    lastChunk = chunk;
    chunks.push(Buffer.from(chunk));
  });
  assert.ok(chunks.length > 5, `${chunks.length} chunks`);
  assert.ok(reused, 'one buffer, reused between chunks');
  assert.equal(length, Buffer.concat(chunks).length);
  assert.deepEqual(Buffer.concat(chunks), Buffer.from(pickleValue(value, NO_STORAGES)));
  assert.equal(describe(run(Buffer.concat(chunks)).value), describe(value));
});

// Vectors the VM reads whose values protocol 2 can express (EXT codes, NEWOBJ_EX kwargs and
// persistent ids without a loader are not round-trippable values).
const VECTORS = manifest.vectors.filter((v) => expectedOf(v.file).value !== undefined && !v.opcodes.some((op) => /^EXT|NEWOBJ_EX|PERSID/.test(op)));

test('the CPython vector table is not empty', () => assert.ok(VECTORS.length >= 25, `${VECTORS.length} vectors`));
for (const v of VECTORS) {
  const expected = expectedOf(v.file).value!;
  test(`vector ${v.file}: re-pickled by us, it reads back to its expected value`, () => {
    const first = run(vectorBytes(v.file)).value;
    const again = run(pickleValue(first, NO_STORAGES)).value;
    matchValue(again, expected);
  });
}

test('an int of 256 bytes is written with LONG4 and reads back', () => {
  const big = 2n ** 2040n; // 256 bytes with its sign byte
  assert.equal(run(pickleValue(big, NO_STORAGES)).value, big);
});

const TORCH_DIR = new URL('../../../fixtures/torch/', import.meta.url).pathname;
const TORCH_ZIPS = readdirSync(TORCH_DIR).filter(
  (f) => f.endsWith('.pt') && !/torchscript|whole_model|malicious/.test(f) && ZipArchive.looksLikeZip(new FileReader(TORCH_DIR + f)),
);
test('the torch fixture table is not empty', () => assert.ok(TORCH_ZIPS.length >= 8, TORCH_ZIPS.join(', ')));
for (const f of TORCH_ZIPS) {
  test(`torch 1.13 ${f}: data.pkl re-pickled reads back to the same tree of tensors`, () => {
    const archive = openTorchArchive(new FileReader(TORCH_DIR + f));
    const storages = new Map<string, TorchStorage>();
    const original = unpickleRecord(archive, 'data.pkl', storages).value;
    const bytes = pickleValue(original, TORCH_IDS);
    // Read back as torch.load reads data.pkl: persistent ids become storages (fresh objects here).
    const fresh = new Map<string, TorchStorage>();
    const loadStorage = (pid: PyValue): TorchStorage => {
      const id = decodeStorageId(pid, f);
      const known =
        fresh.get(id.key) ?? new TorchStorage(id.key, id.storageType, id.dtype, id.location, id.numel, () => assert.fail('bytes not needed'), id.storageModule);
      fresh.set(id.key, known);
      return known;
    };
    const reread = unpickle(PickleInput.fromBytes(bytes, f), torchPickleHooks(f, loadStorage)).value;
    assert.equal(describe(reread), describe(original));
    assert.deepEqual([...fresh.keys()].sort(), [...storages.keys()].sort());
  });
}

/** A canonical text of a value: containers by content, tensors and storages by what torch loads. */
function describe(v: PyValue, seen = new Set<object>()): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (seen.has(v)) return '<cycle>';
  seen.add(v);
  const d = (x: PyValue): string => describe(x, seen);
  try {
    if (v instanceof PyFloat) return `float(${Object.is(v.value, -0) ? '-0' : v.value})`;
    if (v instanceof PyComplex) return `complex(${v.real},${v.imag})`;
    if (v instanceof PyBytes) return `${v.mutable ? 'bytearray' : 'bytes'}(${Buffer.from(v.data).toString('hex')})`;
    if (v instanceof PyList) return `[${v.items.map(d).join(',')}]`;
    if (v instanceof PyTuple) return `(${v.items.map(d).join(',')})`;
    if (v instanceof PyDict)
      return `${v.ordered ? 'odict' : 'dict'}{${v.entries.map(([k, x]) => `${d(k)}:${d(x)}`).join(',')}}${v.attrs ? `attrs=${d(v.attrs)}` : ''}`;
    if (v instanceof PySet) return `${v.frozen ? 'frozenset' : 'set'}{${v.items.map(d).join(',')}}`;
    if (v instanceof PyGlobal) return `global(${v.module}.${v.name})`;
    if (v instanceof PyPersistent) return `pid(${d(v.pid)})`;
    if (v instanceof TorchStorage) return `storage(${v.storageModule}.${v.storageType},${v.key},${v.location},${v.numel})`;
    if (v instanceof TorchTensor)
      return `tensor(${v.rebuild.module}.${v.rebuild.name},${v.dtype.name},${v.args.map(d).join(',')},param=${v.isParameter},grad=${v.requiresGrad})`;
    if (v instanceof PyObject) {
      return `obj(${d(v.callable)},${v.via},(${v.args.map(d).join(',')}),state=${v.state === undefined ? '-' : d(v.state)},list=[${v.listItems.map(d).join(',')}],dict={${v.dictItems.map(([k, x]) => `${d(k)}:${d(x)}`).join(',')}})`;
    }
  } finally {
    seen.delete(v);
  }
  return assert.fail(`describe: unknown value ${String(v)}`);
}
