// The key tree folds numbered runs by comparing shape numbers and makes nodes only for what is
// shown. It must show exactly what the plain definition shows: a trie of the dotted parts, chains
// of single children joined, then at each level `^(.*?)(\d+)(\D*)$` names with consecutive numbers
// and equal subtrees (as shown: cut to `width`) folded when 3 or more, cut to `width`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dtypeByName } from '../../../shared/dtypes.ts';
import type { TreeNode } from '../../../shared/inspect.ts';
import { keyTrie } from '../../../main/checkpoint/key-trie.ts';
import type { StateDictEntry } from '../../../main/checkpoint/roles.ts';
import { REBUILD_TENSOR_V2, TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { prng } from '../../helpers/prng.ts';

interface PlainNode {
  kids: Map<string, PlainNode>;
  tensor?: TorchTensor;
  count: number;
}

const text = (t: TorchTensor): string => `${t.dtype.name}[${t.shape.join(', ')}] ${t.device}`;

/** The definition, written plainly: a node per part, TreeNodes for every node, shapes compared as JSON. */
function plainKeyTree(entries: readonly StateDictEntry[], width: number): TreeNode[] {
  const root: PlainNode = { kids: new Map(), count: 0 };
  for (const { key, tensor } of entries) {
    let cur = root;
    root.count++;
    for (const part of key.split('.')) {
      let next = cur.kids.get(part);
      if (!next) cur.kids.set(part, (next = { kids: new Map(), count: 0 }));
      next.count++;
      cur = next;
    }
    cur.tensor = tensor;
  }
  const nodes = (t: PlainNode): TreeNode[] =>
    [...t.kids].map(([name, n]): TreeNode => {
      while (!n.tensor && n.kids.size === 1) {
        const [part, only] = [...n.kids][0]!;
        name = `${name}.${part}`;
        n = only!;
      }
      if (n.tensor && n.kids.size === 0) return { key: name, type: n.tensor.isParameter ? 'Parameter' : 'tensor', summary: text(n.tensor) };
      const kids = fold(nodes(n));
      const node: TreeNode = { key: `${name}.`, type: 'prefix', summary: `${n.count} tensor${n.count === 1 ? '' : 's'}`, children: kids.slice(0, width) };
      if (kids.length > width) node.more = kids.length - width;
      return node;
    });
  return fold(nodes(root));
}

function fold(nodes: TreeNode[]): TreeNode[] {
  const cut = (k: string | number) => {
    const m = /^(.*?)(\d+)(\D*)$/.exec(String(k));
    return m && !(m[2]!.length > 1 && m[2]!.startsWith('0')) ? { stem: m[1]!, n: Number(m[2]), tail: m[3]! } : null;
  };
  const shape = (n: TreeNode): string => JSON.stringify({ ...n, key: 0 });
  const out: TreeNode[] = [];
  for (let i = 0; i < nodes.length; ) {
    const first = cut(nodes[i]!.key);
    let j = i + 1;
    while (first && j < nodes.length) {
      const k = cut(nodes[j]!.key);
      if (!k || k.stem !== first.stem || k.tail !== first.tail || k.n !== first.n + (j - i) || shape(nodes[j]!) !== shape(nodes[i]!)) break;
      j++;
    }
    if (first && j - i >= 3)
      out.push({ ...nodes[i]!, key: `${first.stem}{${first.n}..${first.n + j - i - 1}}${first.tail}`, summary: `${j - i} × ${nodes[i]!.summary}` });
    else out.push(...nodes.slice(i, j));
    i = j;
  }
  return out;
}

const f32 = dtypeByName('float32')!;
const tensors = [[4], [4], [8], [2, 2]].map((shape, i) => {
  const t = new TorchTensor(REBUILD_TENSOR_V2, null, 'dense', f32, shape, [1], 0, null);
  t.isParameter = i === 1;
  return t;
});

/** Keys in blocks that repeat with numbers (runs, gaps, zero-padding), odd parts (empty, a line break), a key that is another's prefix. */
function randomEntries(next: () => number): StateDictEntry[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const parts = ['w', 'b', 'x1', 'x2', 'x3', 'a0', 'a00', '', 'l\n1', 'l\n2', 'l\n3', '7', 'mlp'];
  const keys = new Map<string, TorchTensor>();
  const blocks = 1 + Math.floor(next() * 4);
  for (let b = 0; b < blocks; b++) {
    const stem = pick(['layers.', 'h', 'blk.', '', 'm.e']);
    const inner = Array.from({ length: 1 + Math.floor(next() * 4) }, () => Array.from({ length: 1 + Math.floor(next() * 3) }, () => pick(parts)).join('.'));
    const count = Math.floor(next() * 14);
    let n = Math.floor(next() * 3);
    for (let i = 0; i < count; i++) {
      n += next() < 0.9 ? 1 : 2;
      for (const tail of inner) keys.set(`${stem}${n}.${tail}`, next() < 0.93 ? tensors[b % 2]! : pick(tensors));
    }
  }
  for (let i = Math.floor(next() * 12); i > 0; i--) keys.set(Array.from({ length: 1 + Math.floor(next() * 3) }, () => pick(parts)).join('.'), pick(tensors));
  return [...keys].map(([key, tensor]) => ({ key, tensor }));
}

test('keyTrie shows what the plain definition shows, on 3,000 random key sets and widths', () => {
  const next = prng(20261206);
  let folded = 0;
  for (let round = 0; round < 3000; round++) {
    const entries = randomEntries(next);
    const width = 1 + Math.floor(next() * 6);
    const want = plainKeyTree(entries, width);
    const got = keyTrie(entries, width);
    assert.deepEqual(got, { shown: want.slice(0, width), total: want.length }, `round ${round}, width ${width}: ${JSON.stringify(entries.map((e) => e.key))}`);
    if (JSON.stringify(want).includes('..')) folded++;
  }
  assert.ok(folded > 1000, `${folded} key sets had a run folded`);
});

test('keyTrie: a level of many children (found through a Map) folds as a short one', () => {
  const entries = Array.from({ length: 600 }, (_, i) => ({ key: `m.${i % 300}.${i < 300 ? 'w' : 'b'}`, tensor: tensors[0]! }));
  assert.deepEqual(keyTrie(entries, 64), { shown: plainKeyTree(entries, 64), total: 1 });
  assert.equal(keyTrie(entries, 64).shown[0]!.children![0]!.key, '{0..299}.');
});
