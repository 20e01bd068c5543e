// Size-bounded shard sets as Hugging Face writes them: the split (huggingface_hub's own test
// cases), the index text, and round trips through safetensors and torch .bin shards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dtypeByName } from '../../../shared/dtypes.ts';
import { readShardIndex } from '../../../main/formats/safetensors/shard-index.ts';
import { indexJson, parseShardSize, splitIntoShards } from '../../../main/reshard/hf-shards.ts';
import { fx, run, tensorsOf, tmp, why } from './helpers.ts';

// huggingface_hub tests/test_serialization.py: DUMMY_STATE_DICT, sizes as the tensor "size"
const DUMMY: [string, number][] = [
  ['layer_1', 6],
  ['layer_2', 10],
  ['layer_3', 30],
  ['layer_4', 2],
  ['layer_5', 2],
];
const split = (max: number): Record<string, string[]> => {
  const s = splitIntoShards(
    DUMMY.map(([name, bytes]) => ({ name, item: name, bytes, storage: null })),
    max,
    'safetensors',
  );
  return Object.fromEntries(s.files.map((f) => [f.name, f.entries.map((e) => e.name)]));
};

test('the split follows huggingface_hub: a big tensor gets its own shard, a tensor that would tip the shard over starts a new one', () => {
  assert.deepEqual(split(10), {
    'model-00001-of-00004.safetensors': ['layer_1'],
    'model-00002-of-00004.safetensors': ['layer_3'],
    'model-00003-of-00004.safetensors': ['layer_2'],
    'model-00004-of-00004.safetensors': ['layer_4', 'layer_5'],
  });
  assert.deepEqual(split(100), { 'model.safetensors': ['layer_1', 'layer_2', 'layer_3', 'layer_4', 'layer_5'] });
  const s = splitIntoShards(
    DUMMY.map(([name, bytes]) => ({ name, item: name, bytes, storage: null })),
    10,
    'torch',
  );
  assert.equal(s.totalSize, 50);
  assert.equal(s.indexName, 'pytorch_model.bin.index.json');
  assert.equal(s.files[0]!.name, 'pytorch_model-00001-of-00004.bin');
});

test('tensors sharing a storage go to the shard of the first of them and count once', () => {
  const a = {};
  const s = splitIntoShards(
    [
      { name: 'embed', item: 1, bytes: 8, storage: a },
      { name: 'x', item: 2, bytes: 8, storage: null },
      { name: 'head', item: 3, bytes: 0, storage: a },
    ],
    10,
    'torch',
  );
  assert.deepEqual(
    s.files.map((f) => f.entries.map((e) => e.name)),
    [['embed', 'head'], ['x']],
  );
  assert.equal(s.totalSize, 16);
});

test('the index is json.dumps(index, indent=2, sort_keys=True) + "\\n", non-ASCII escaped', () => {
  const s = splitIntoShards(
    [
      { name: 'b.weight', item: 0, bytes: 6, storage: null },
      { name: 'a.wéight', item: 0, bytes: 6, storage: null },
    ],
    10,
    'safetensors',
  );
  assert.equal(
    indexJson(s),
    [
      '{',
      '  "metadata": {',
      '    "total_size": 12',
      '  },',
      '  "weight_map": {',
      '    "a.w\\u00e9ight": "model-00002-of-00002.safetensors",',
      '    "b.weight": "model-00001-of-00002.safetensors"',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
});

test('shard sizes: decimal units as Hugging Face counts them, binary ones, plain bytes', () => {
  assert.equal(parseShardSize('5GB'), 5_000_000_000);
  assert.equal(parseShardSize('500MB'), 500_000_000);
  assert.equal(parseShardSize('1.5GB'), 1_500_000_000);
  assert.equal(parseShardSize('2GiB'), 2 ** 31);
  assert.equal(parseShardSize('4096'), 4096);
  assert.match(String(parseShardSize('five')), /not a size/);
});

/** tensors by dotted name (a shard set is flat; a nested source is compared by its flattened names) */
const flat = (m: Map<string, unknown>): [string, unknown][] =>
  [...m].map(([k, v]): [string, unknown] => [k.replaceAll('/', '.'), v]).sort(([a], [b]) => (a < b ? -1 : 1));

test('single → safetensors shards → single is the identity for tensors, and the set follows the format', async () => {
  const dir = tmp();
  const src = fx('torch2/dcp/expected_single.pt');
  const shards = join(dir, 'model');
  const r = await run([src], { target: { kind: 'shards', maxShardBytes: 3000 }, format: 'safetensors', output: shards });
  assert.ok(r.verified, why(r));
  const names = readdirSync(shards).sort();
  assert.ok(names.length > 3);
  assert.ok(
    names.slice(0, -1).every((n, i, a) => n === `model-${String(i + 1).padStart(5, '0')}-of-${String(a.length).padStart(5, '0')}.safetensors`),
    names.join(' '),
  );
  assert.equal(names.at(-1), 'model.safetensors.index.json');
  const index = readShardIndex(join(shards, 'model.safetensors.index.json'));
  const bytes = [...tensorsOf(src).values()].reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * dtypeByName(t.dtype)!.size, 0);
  assert.equal(index.metadata['total_size'], bytes, 'total_size: the bytes of every tensor');
  assert.equal(r.plan.totalBytes, bytes);
  assert.ok(
    r.plan.dropped.some((d) => d.name === 'epoch'),
    'non-tensor content is reported, not silently lost',
  );
  const back = join(dir, 'back.pt');
  const m = await run([shards], { target: { kind: 'single' }, output: back });
  assert.equal(m.plan.input.kind, 'shard-set');
  assert.ok(m.verified, why(m));
  assert.deepEqual(flat(tensorsOf(back)), flat(tensorsOf(src)));
});

test('single → torch .bin shards → single is the identity; tied tensors share one shard and stay tied', async () => {
  const dir = tmp();
  for (const src of [fx('torch/cpu_state_dict.pt'), fx('torch/views.pt')]) {
    const shards = join(dir, src.split('/').pop()!);
    const r = await run([src], { target: { kind: 'shards', maxShardBytes: 200 }, format: 'torch', output: shards });
    assert.ok(r.verified, why(r));
    const names = readdirSync(shards).sort();
    assert.equal(names.at(-1), 'pytorch_model.bin.index.json');
    const index = JSON.parse(readFileSync(join(shards, 'pytorch_model.bin.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    if (src.endsWith('views.pt')) assert.equal(index.weight_map['tied_a'], index.weight_map['tied_b'], 'tied tensors in one shard');
    const back = join(dir, `${names.length}-back.pt`);
    const m = await run([join(shards, 'pytorch_model.bin.index.json')], { target: { kind: 'single' }, output: back });
    assert.ok(m.verified, why(m));
    assert.deepEqual(flat(tensorsOf(back)), flat(tensorsOf(src)));
  }
});

test('a shard folder is replaced only with --force, and never one that holds other files', async () => {
  const dir = tmp();
  const out = join(dir, 'set');
  const src = fx('torch/cpu_state_dict.pt');
  assert.ok((await run([src], { target: { kind: 'shards', maxShardBytes: 1000 }, format: 'safetensors', output: out })).verified);
  const again = await run([src], { target: { kind: 'shards', maxShardBytes: 1000 }, format: 'safetensors', output: out });
  assert.match(again.plan.errors.join(), /already exists; pass --force/);
  const forced = await run([src], { target: { kind: 'shards', maxShardBytes: 500 }, format: 'safetensors', output: out, force: true });
  assert.ok(forced.verified, why(forced));
  assert.ok(readdirSync(out).every((n) => n.endsWith('.safetensors') || n.endsWith('.json')));
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(join(mine, 'notes.txt'), 'keep me');
  const refused = await run([src], { target: { kind: 'shards', maxShardBytes: 500 }, format: 'safetensors', output: mine, force: true });
  assert.match(refused.plan.errors.join(), /holds other files/);
  assert.deepEqual(readdirSync(mine), ['notes.txt']);
  assert.deepEqual(readdirSync(dir).sort(), ['mine', 'set'], 'no staging folder left behind');
});

test('the same shards as huggingface_hub.save_torch_state_dict: file names, weight map, and byte-identical safetensors shards', async () => {
  const dir = tmp();
  const hub = fx('safetensors/sharded');
  const hubBin = fx('safetensors/sharded_bin');
  const sf = join(dir, 'sf');
  const r = await run([hubBin], { target: { kind: 'shards', maxShardBytes: 700 }, format: 'safetensors', output: sf });
  assert.ok(r.verified, why(r));
  for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
    assert.deepEqual(readFileSync(join(sf, f)), readFileSync(join(hub, f)), f);
  const mapOf = (p: string): [string, string][] => [...readShardIndex(p).weightMap].sort(([a], [b]) => (a < b ? -1 : 1));
  assert.deepEqual(mapOf(join(sf, 'model.safetensors.index.json')), mapOf(join(hub, 'model.safetensors.index.json')));
  const bin = join(dir, 'bin');
  const b = await run([join(hub, 'model.safetensors.index.json')], { target: { kind: 'shards', maxShardBytes: 700 }, format: 'torch', output: bin });
  assert.ok(b.verified, why(b));
  assert.deepEqual(mapOf(join(bin, 'pytorch_model.bin.index.json')), mapOf(join(hubBin, 'pytorch_model.bin.index.json')));
  // and merging either set back gives the tensors the hub wrote
  const one = join(dir, 'one.safetensors');
  assert.ok((await run([hub], { target: { kind: 'single' }, format: 'safetensors', output: one })).verified);
  assert.deepEqual(flat(tensorsOf(one)), flat(tensorsOf(join(hub, 'model.safetensors.index.json'))));
});
