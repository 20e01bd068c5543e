// The report's container tree is built when first read (inspect's JSON, the UI's clone), not by
// analyse: a conversion never reads it. Read or serialised, it must be the very summary analyse
// built before, in the same place among the report's keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { summariseTree } from '../../../main/checkpoint/inspect.ts';
import { keyTrie } from '../../../main/checkpoint/key-trie.ts';
import { asStateDict } from '../../../main/checkpoint/roles.ts';
import type { PyDict } from '../../../main/formats/values/python-values.ts';
import type { TorchTensor } from '../../../main/formats/values/torch-values.ts';

const FILE = 'test/fixtures/torch/compiled_dp_prefix.pt';

test('report.tree: built on first read, equal to the eager summary, in the same key position', () => {
  const ck = openCheckpoint(FILE);
  try {
    const eager = summariseTree('', ck.reading.root, 0, 64, new Set());
    const keys = Object.keys(ck.report);
    assert.ok(keys.indexOf('tree') === keys.indexOf('security') + 1 && keys.indexOf('notes') === keys.indexOf('tree') + 1, keys.join(','));
    const json = JSON.parse(JSON.stringify(ck.report)) as { tree: unknown };
    assert.deepEqual(json.tree, eager);
    assert.ok(ck.report.tree.children && ck.report.tree.children.length > 0, 'a state dict has children');
    assert.equal(ck.report.tree, ck.report.tree, 'built once, then kept');
    assert.deepEqual(structuredClone(ck.report).tree, eager, 'the UI receives a structured clone');
  } finally {
    ck.close();
  }
});

test('report.tree: an assigned tree replaces the summary', () => {
  const ck = openCheckpoint(FILE);
  try {
    ck.report.tree = { key: '', type: 'dict', summary: 'replaced' };
    assert.equal(JSON.parse(JSON.stringify(ck.report)).tree.summary, 'replaced');
  } finally {
    ck.close();
  }
});

test('keyTrie: a key walked from the parts it shares with the key before it folds as one walked from the root', () => {
  const ck = openCheckpoint(FILE);
  try {
    const sd = asStateDict(ck.reading.root as PyDict);
    assert.ok(sd && sd.length >= 2);
    const [g, f] = [sd[0]!.tensor, sd[1]!.tensor];
    // shared prefixes that end inside a part (`a.b` / `a.bc`, `a.` / `ab.`), a key that is another's prefix, an empty part
    const keys = ['a.b.x', 'a.c.y', 'a.b.z', 'a.b', 'a.b.c.d', 'a..e', 'a..f', 'ab.q', 'a.bc'];
    const text = (t: TorchTensor): string => `${t.dtype.name}[${t.shape.join(', ')}] ${t.device}`;
    const leaf = (key: string, t: TorchTensor) => ({ key, type: t.isParameter ? 'Parameter' : 'tensor', summary: text(t) });
    const trie = keyTrie(
      keys.map((key, i) => ({ key, tensor: i % 2 ? f : g })),
      64,
    );
    assert.equal(trie.total, 2);
    assert.deepEqual(trie.shown, [
      {
        key: 'a.',
        type: 'prefix',
        summary: '8 tensors',
        children: [
          { key: 'b.', type: 'prefix', summary: '4 tensors', children: [leaf('x', g), leaf('z', g), leaf('c.d', g)] },
          leaf('c.y', f),
          { key: '.', type: 'prefix', summary: '2 tensors', children: [leaf('e', f), leaf('f', g)] },
          leaf('bc', g),
        ],
      },
      leaf('ab.q', f),
    ]);
  } finally {
    ck.close();
  }
});

test('tensorInfoPieces: the report.tensors list made a piece at a time, state-dict paths of whole modules included', () => {
  for (const file of ['test/fixtures/torch/whole_model_dp.pt', 'test/fixtures/torch/views.pt', FILE]) {
    const ck = openCheckpoint(file);
    try {
      const pieces = ck.tensorInfoPieces();
      const made = [];
      for (let i = 0; i < pieces.length; i += 2) made.push(...pieces.items(i, i + 2));
      assert.deepEqual(made, ck.report.tensors, file);
      if (file.includes('whole_model'))
        assert.ok(
          made.some((t) => t.statePath),
          'a pickled module gives state-dict paths',
        );
      assert.throws(() => ck.tensorInfoPieces().items(1, 2), /made in order/);
    } finally {
      ck.close();
    }
  }
});
