// copyTree is how convert builds its output tree: whatever the source shares or loops through
// must be shared and loop the same way in the copy, or the pickle written from it differs from
// the source in more than the conversion asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyTree } from '../../../main/checkpoint/copy-tree.ts';
import { PyDict, PyList, PySet, PyTuple, type PyValue } from '../../../main/formats/values/python-values.ts';

test('a tuple that holds itself through a list is one tuple in the copy, and a new one', () => {
  const list = new PyList();
  const t = new PyTuple([list, 1]);
  list.items.push(t);
  const c = copyTree(t) as PyTuple;
  assert.notEqual(c, t);
  assert.ok(c instanceof PyTuple);
  const inner = c.items[0] as PyList;
  assert.notEqual(inner, list);
  assert.equal(inner.items[0], c);
  assert.equal(c.items[1], 1);
});

test('a tuple that holds itself through a dict is one tuple in the copy', () => {
  const d = new PyDict();
  const t = new PyTuple([d]);
  d.set('me', t);
  const c = copyTree(new PyList([t, t])) as PyList;
  const [a, b] = c.items as [PyTuple, PyTuple];
  assert.equal(a, b);
  assert.equal((a.items[0] as PyDict).get('me'), a);
});

test('sets, tuples, lists and dicts held at two places stay shared; none is the original', () => {
  const set = new PySet([1, 2], true);
  const tuple = new PyTuple([3]);
  const list = new PyList([4]);
  const dict = new PyDict();
  dict.set('k', 5);
  const root = new PyDict();
  for (const [name, v] of [
    ['set', set],
    ['tuple', tuple],
    ['list', list],
    ['dict', dict],
  ] as [string, PyValue][])
    root.set(name, new PyList([v, v]));
  const c = copyTree(root) as PyDict;
  for (const name of ['set', 'tuple', 'list', 'dict']) {
    const [a, b] = (c.get(name) as PyList).items;
    assert.equal(a, b, `${name} stays one object`);
    assert.notEqual(a, (root.get(name) as PyList).items[0], `${name} is copied`);
  }
  assert.deepEqual(((c.get('set') as PyList).items[0] as PySet).items, [1, 2]);
  assert.equal(((c.get('set') as PyList).items[0] as PySet).frozen, true);
});
