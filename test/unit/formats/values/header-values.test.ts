// Header tensors and storages keep only their own fields and read the rest from constants on
// their prototype: every field, getter and method must give what a TorchTensor / TorchStorage
// made by the constructor gives, and a write to a constant must fail loudly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileRangeStorage, headerTensor } from '../../../../main/formats/values/header-values.ts';
import { REBUILD_TENSOR_V2, TorchStorage, TorchTensor, type ByteRange } from '../../../../main/formats/values/torch-values.ts';
import { BufferReader } from '../../../../main/io/random-access.ts';
import { dtypeByName } from '../../../../shared/dtypes.ts';

const f32 = dtypeByName('float32')!;
const reader = new BufferReader(new Uint8Array(64), 'mem');

/** Every own field a constructor-made object has, and the getters of its class chain. */
function readableNames(o: object): string[] {
  const names = new Set(Object.keys(o));
  for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const [n, d] of Object.entries(Object.getOwnPropertyDescriptors(p))) if (d.get || (n !== 'constructor' && typeof d.value !== 'function')) names.add(n);
  }
  return [...names];
}

test('a header storage reads as the TorchStorage the constructor makes', () => {
  const range: ByteRange = { reader, offset: 8, length: 24 };
  const plain = new TorchStorage('w', 'FloatStorage', f32, 'cpu', 6, range);
  const compact = fileRangeStorage('w', 'FloatStorage', f32, 6, reader, 8);
  assert.ok(compact instanceof TorchStorage);
  for (const name of readableNames(plain)) {
    if (name === 'serial' || name === 'where') continue;
    assert.deepEqual((compact as unknown as Record<string, unknown>)[name], (plain as unknown as Record<string, unknown>)[name], name);
  }
  assert.deepEqual(compact.locate(), range);
  assert.equal(compact.describe(), plain.describe());
  assert.notEqual(compact.serial, fileRangeStorage('w', 'FloatStorage', f32, 6, reader, 8).serial, 'each storage has its own serial');
  assert.throws(() => {
    (compact as { recordCrc: number | null }).recordCrc = 1;
  }, TypeError);
});

test('a header tensor reads as the TorchTensor the constructor makes, recipe arguments included', () => {
  const storage = fileRangeStorage('w', 'FloatStorage', f32, 6, reader, 8);
  const plain = new TorchTensor(REBUILD_TENSOR_V2, null, 'dense', f32, [2, 3], [3, 1], 0, storage);
  const compact = headerTensor(f32, [2, 3], [3, 1], storage);
  assert.ok(compact instanceof TorchTensor);
  const names = readableNames(plain);
  for (const n of [
    'requiresGrad',
    'isParameter',
    'rebuild',
    'kind',
    'storageOffset',
    'pyState',
    'subclass',
    'deviceArg',
    'components',
    'args',
    'numel',
    'nbytes',
    'device',
    'isContiguous',
    'storageSpan',
  ])
    assert.ok(names.includes(n), `${n} is compared`);
  for (const name of names) assert.deepEqual((compact as unknown as Record<string, unknown>)[name], (plain as unknown as Record<string, unknown>)[name], name);
  assert.equal(compact.describe(), plain.describe());
  assert.equal(compact.shape, plain.shape, 'the same interned shape');
  assert.throws(() => {
    compact.requiresGrad = true;
  }, TypeError);
  assert.throws(() => {
    compact.pyState = 1;
  }, TypeError);
  compact.subclass = null; // setting what it already is changes nothing
  assert.equal(compact.subclass, null);
});
