// dcpEntries flattens a tree as torch's flatten_state_dict does, which recurses without a memo.
// `ckpt reshard` builds the input's layout with it for every target: a dict holding itself made a
// 1.4 GB walk that ended in a stack overflow, and containers sharing one another (2^depth paths)
// ran a worker out of memory on a 4 KB file. Both are refused now, in one typed line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dcpEntries } from '../../../main/checkpoint/flatten.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { PyDict, PyList } from '../../../main/formats/values/python-values.ts';

const refusal = (kind: string, text: RegExp) => (e: unknown) => e instanceof CheckpointError && e.kind === kind && text.test(e.message);

test('a dict or list that holds itself is refused, not walked until the stack overflows', () => {
  const d = new PyDict();
  d.set('me', d);
  const root = new PyDict();
  root.set('extra', d);
  assert.throws(() => dcpEntries(root), refusal('unsupported', /the dict at extra\.me holds itself/));

  const l = new PyList([1]);
  l.items.push(l);
  const top = new PyDict();
  top.set('extra', l);
  assert.throws(() => dcpEntries(top), refusal('unsupported', /the list at extra\.1 holds itself/));
});

test('a list held twice on one path is no cycle: both places are flattened', () => {
  const shared = new PyList([new PyDict()]);
  (shared.items[0] as PyDict).set('a', 1);
  const root = new PyDict();
  root.set('x', shared);
  root.set('y', new PyList([shared]));
  assert.deepEqual(
    dcpEntries(root).entries.map((e) => e.name),
    ['x.0.a', 'y.0.0.a'],
  );
});

test('containers that share one another (2^40 paths) are refused as too large, quickly', () => {
  let x: PyDict = new PyDict();
  x.set('a', 1);
  for (let i = 0; i < 40; i++) {
    const next = new PyDict();
    next.set('l', x);
    next.set('r', x);
    x = next;
  }
  const root = new PyDict();
  root.set('extra', x);
  assert.throws(() => dcpEntries(root), refusal('too-large', /over 20000000 path keys/));
});
