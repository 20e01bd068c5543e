// PyDict keeps Python's dict semantics whether it searches its keys in order (small dicts) or
// through its StringIndex (from 8 entries on), across the switch and for keys of mixed kinds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyDict, PyFloat, PyTuple } from '../../../../main/formats/values/python-values.ts';

test('PyDict: a later set of an equal key replaces in place, for str keys before and after the index is made', () => {
  const d = new PyDict(true);
  const n = 20_000;
  for (let i = 0; i < n; i++) d.set(`layer.${i}.weight`, i);
  for (let i = 0; i < n; i += 7) d.set(`layer.${i}.weight`, -i);
  d.set(1, 'int one');
  d.set(true, 'bool True'); // True == 1 in Python: replaces the int key's value
  d.set(new PyFloat(2), 'float two');
  d.set(2, 'int two'); // 2 == 2.0
  d.set('1', 'str one'); // a str never equals an int
  d.set(new PyTuple(['a', 1]), 'tuple');
  assert.equal(d.size, n + 4);
  for (let i = 0; i < n; i++) assert.equal(d.get(`layer.${i}.weight`), i % 7 === 0 ? -i : i);
  assert.equal(d.get('layer.20000.weight'), undefined);
  assert.deepEqual(
    d.entries.slice(n).map(([, v]) => v),
    ['bool True', 'int two', 'str one', 'tuple'],
  );
  assert.equal(d.get(new PyTuple(['a', 1])), 'tuple');
  assert.equal(d.get('1'), 'str one');
  assert.equal(d.get(1), 'bool True');
});

test('PyDict: small dicts and the switch to an index at 8 entries agree on every key', () => {
  for (let size = 0; size <= 12; size++) {
    const d = new PyDict();
    d.set(0, 'int first');
    for (let i = 0; i < size; i++) d.set(`k${i % 5 === 4 ? 0 : i}`, i);
    const expected = new Map<string, number>();
    for (let i = 0; i < size; i++) expected.set(`k${i % 5 === 4 ? 0 : i}`, i);
    assert.equal(d.size, expected.size + 1, `size ${size}`);
    for (const [k, v] of expected) assert.equal(d.get(k), v, `size ${size} key ${k}`);
    assert.deepEqual(
      d.entries.slice(1).map(([k]) => k),
      [...expected.keys()],
    );
    assert.equal(d.get('missing'), undefined);
    assert.equal(d.get(0), 'int first');
  }
});
