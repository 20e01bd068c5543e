// Integers the writer emits: LONG1 up to 255 bytes, LONG4 beyond (a LONG1 length byte cannot say
// more), encoded in linear time; every case is compared byte for byte with CPython's own
// `pickle.dumps(v, protocol=2)` (Debian's /usr/bin/python3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { pickleValue } from '../../../../main/formats/pickle/pickler.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../../../main/formats/pickle/unpickler.ts';
import { PyTuple } from '../../../../main/formats/values/python-values.ts';

const PYTHON = '/usr/bin/python3';
const noStorages = { storageId: (): PyTuple => new PyTuple([]) };

/** Python expressions and the same values in TypeScript. */
const CASES: [string, bigint][] = [
  ['2**63', 2n ** 63n],
  ['-2**63 - 1', -(2n ** 63n) - 1n],
  ['2**2039 - 1', 2n ** 2039n - 1n], // 255 bytes: the last LONG1
  ['2**2039', 2n ** 2039n], // 256 bytes (the sign byte): the first LONG4
  ['-2**2040', -(2n ** 2040n)], // 256 bytes, negative
  ['-2**2040 - 1', -(2n ** 2040n) - 1n],
  ['10**5000 + 12345', 10n ** 5000n + 12345n],
];

function pythonDigest(expr: string): string {
  return execFileSync(
    PYTHON,
    [
      '-c',
      `import pickle, hashlib, sys; sys.set_int_max_str_digits(0) if hasattr(sys, 'set_int_max_str_digits') else None; print(hashlib.sha256(pickle.dumps(${expr}, protocol=2)).hexdigest())`,
    ],
    { encoding: 'utf8' },
  ).trim();
}

test('ints wider than 255 bytes are written with LONG4, byte for byte as CPython writes them', {
  skip: existsSync(PYTHON) ? false : `${PYTHON} is missing`,
}, () => {
  for (const [expr, v] of CASES) {
    const bytes = pickleValue(v, noStorages);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), pythonDigest(expr), expr);
    assert.equal(unpickle(PickleInput.fromBytes(bytes, expr)).value, v, `${expr} reads back`);
  }
});

test('a 1,000,000-digit int is encoded as CPython encodes it and reads back (its time: npm run bench pickle-vm)', {
  skip: existsSync(PYTHON) ? false : `${PYTHON} is missing`,
}, () => {
  const v = 10n ** 1_000_000n - 1n;
  const bytes = pickleValue(v, noStorages);
  const back = unpickle(PickleInput.fromBytes(bytes, 'big')).value;
  assert.equal(back, v);
  assert.equal(bytes[2], 0x8b, 'LONG4');
  assert.equal(createHash('sha256').update(bytes).digest('hex'), pythonDigest('10**1000000 - 1'));
});
