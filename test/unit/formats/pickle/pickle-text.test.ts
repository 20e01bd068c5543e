// Strings and keys a Python value can hold that UTF-8 and JS equality do not: a lone surrogate in
// a str (CPython pickles it with 'surrogatepass'), and NaN dict keys (never equal, never merged).
// The hex is CPython 3.11's `pickle.dumps(v, protocol=2)`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickleValue, type PickleWriterOptions } from '../../../../main/formats/pickle/pickler.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../../../main/formats/pickle/unpickler.ts';
import { PyDict, PyFloat, type PyValue } from '../../../../main/formats/values/python-values.ts';

const NO_STORAGES: PickleWriterOptions = { storageId: () => assert.fail('this value holds no storages') };
const read = (hex: string): PyValue => unpickle(PickleInput.fromBytes(Buffer.from(hex, 'hex'), 'test.pkl')).value;
const write = (v: PyValue): string => Buffer.from(pickleValue(v, NO_STORAGES)).toString('hex');

test("a lone surrogate reads and writes as CPython's 'surrogatepass' (ED B2 80), not as U+FFFD", () => {
  // pickle.dumps('a\udc80', 2): BINUNICODE, BINPUT 0 (CPython memoizes every str; we do not)
  assert.equal(read('8002580400000061edb28071002e'), 'a\udc80');
  assert.equal(write('a\udc80'), '8002580400000061edb280' + '2e');
});

test('a long string (the other UTF-8 path) keeps its lone surrogates, and a real pair stays one 4-byte character', () => {
  const long = `\ud800${'é'.repeat(70)}\udfff😀`;
  const hex = write(long);
  assert.ok(hex.startsWith('80025896000000eda080c3a9'), hex.slice(0, 40)); // 150 bytes: ED A0 80, then é as C3 A9
  assert.ok(hex.endsWith('edbfbff09f98802e'), hex.slice(-20)); // \udfff, then 😀 as F0 9F 98 80
  assert.equal(read(hex), long);
});

test('two NaN keys stay two entries, as torch.load reads them (CPython never memoizes a float)', () => {
  // pickle.dumps({float('nan'): 1, float('nan'): 2}, 2)
  const d = read('80027d710028477ff80000000000004b01477ff80000000000004b02752e');
  assert.ok(d instanceof PyDict);
  assert.equal(d.size, 2);
  assert.deepEqual(
    d.entries.map(([k, v]) => [k instanceof PyFloat && Number.isNaN(k.value), v]),
    [
      [true, 1],
      [true, 2],
    ],
  );
});
