// torch ↔ safetensors: the writer against the real safetensors package's bytes (committed
// references), tied tensors kept once with their aliases in __metadata__ as safetensors' convert
// records them, content safetensors cannot hold reported, and round trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openFormat } from '../../../main/formats/open-format.ts';
import { PyDict } from '../../../main/formats/values/python-values.ts';
import { FileReader } from '../../../main/io/random-access.ts';
import { readSafetensorsHeader } from '../../../main/formats/safetensors/safetensors.ts';
import type { TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { fx, run, tensorsOf, tmp, why } from './helpers.ts';

function parts(file: string): { header: Record<string, unknown>; data: Buffer; headerBytes: number } {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  return { header: JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>, data: b.subarray(8 + n), headerBytes: n };
}

test("torch → safetensors is byte for byte what safetensors' save_file writes (torch 2.13 state dict)", async () => {
  const out = join(tmp(), 'model.safetensors');
  const r = await run([fx('torch2/newest_zip.pt')], { target: { kind: 'single' }, format: 'safetensors', output: out });
  assert.ok(r.verified, why(r));
  assert.deepEqual(readFileSync(out), readFileSync(fx('reshard/newest_zip.safetensors')));
  // the state dict's _metadata (module versions) has no place in safetensors: said so
  assert.deepEqual(
    r.plan.dropped.map((d) => d.type),
    ['attributes'],
  );
});

test("tied tensors: kept once, the alias recorded in __metadata__ exactly as safetensors' convert does, data identical", async () => {
  const out = join(tmp(), 'tied.safetensors');
  const r = await run([fx('reshard/tied.pt')], { target: { kind: 'single' }, format: 'safetensors', output: out });
  assert.ok(r.verified, why(r));
  assert.deepEqual(r.plan.aliases, [{ alias: 'head.weight', kept: 'embed.weight' }]);
  const ours = parts(out);
  const ref = parts(fx('reshard/tied.safetensors'));
  assert.deepEqual(ours.header, ref.header, 'same header (the metadata map is unordered in the reference)');
  assert.deepEqual(ours.data, ref.data);
  assert.equal(ours.headerBytes % 8, 0, 'header padded to 8 bytes');
});

test('torch → safetensors → torch: every tensor back, and the alias restored as one shared tensor', async () => {
  const dir = tmp();
  const sf = join(dir, 'tied.safetensors');
  const pt = join(dir, 'tied.pt');
  assert.ok((await run([fx('reshard/tied.pt')], { target: { kind: 'single' }, format: 'safetensors', output: sf })).verified);
  const back = await run([sf], { target: { kind: 'single' }, output: pt });
  assert.ok(back.verified, why(back));
  assert.ok(back.plan.warnings.some((w) => /head\.weight restored as an alias of embed\.weight/.test(w)));
  const sorted = (m: Map<string, unknown>): [string, unknown][] => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  assert.deepEqual(sorted(tensorsOf(pt)), sorted(tensorsOf(fx('reshard/tied.pt'))));
  const r = openFormat(pt);
  try {
    const root = r.root as PyDict;
    assert.equal(
      (root.get('head.weight') as TorchTensor).storage,
      (root.get('embed.weight') as TorchTensor).storage,
      'one storage, as torch.save of the tied original',
    );
  } finally {
    r.close();
  }
});

test('different views of one storage are written as separate copies with the right values, not as aliases', async () => {
  const out = join(tmp(), 'views.safetensors');
  const r = await run([fx('torch/views.pt')], { target: { kind: 'single' }, format: 'safetensors', output: out });
  assert.ok(r.verified, why(r));
  assert.deepEqual(r.plan.aliases, [{ alias: 'tied_b', kept: 'tied_a' }]);
  assert.ok(r.plan.warnings.some((w) => /different views of one storage; each is written as its own copy/.test(w)));
  const exp = JSON.parse(readFileSync(fx('torch/views.expected.json'), 'utf8')) as { tensors: { path: string[]; sha256: string }[] };
  const got = tensorsOf(out);
  for (const e of exp.tensors) if (e.path[0] !== 'tied_b') assert.equal(got.get(e.path[0]!)?.sha256, e.sha256, e.path[0]);
  const reader = new FileReader(out);
  try {
    const h = readSafetensorsHeader(reader); // the reader's validation: contiguous offsets, sizes, tiling
    assert.ok(h.tensors.length > 5);
  } finally {
    reader.close();
  }
});

test('a training checkpoint to safetensors: every tensor by its dotted path; epoch, lr, param groups reported as not carried', async () => {
  const out = join(tmp(), 'train.safetensors');
  const r = await run([fx('torch/training_checkpoint.pt')], { target: { kind: 'single' }, format: 'safetensors', output: out });
  assert.ok(r.verified, why(r));
  const names = r.plan.dropped.map((d) => d.name);
  for (const n of ['epoch', 'best_acc', 'lr', 'optimizer.param_groups.0.lr']) assert.ok(names.includes(n), `${n} reported`);
  const src = tensorsOf(fx('torch/training_checkpoint.pt'));
  const got = tensorsOf(out);
  assert.equal(got.size, src.size);
  for (const [k, v] of src) assert.deepEqual(got.get(k.replaceAll('/', '.')), v, k);
});
