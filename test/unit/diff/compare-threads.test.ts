// The compare threads of `ckpt diff` give the report the calling thread gives: on torch 1.13's
// files (generate_fit.py), whole tensors per thread and tensors split into many small blocks
// that several threads share and whose figures are summed in block order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { comparePairs } from '../../../main/diff/compare-pool.ts';
import { changeOf } from '../../../main/diff/compare-tensor.ts';
import { diffCheckpoints } from '../../../main/diff/diff.ts';
import type { TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { primaryModel } from '../../../main/verify/checkpoint-weights.ts';
import { REPO } from '../../helpers/run-cli.ts';

const DIR = join(REPO, 'test/fixtures/fit');
const perturbed = (
  JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as {
    diff: { name: string; maxAbsDiff: number; meanAbsDiff: number; maxRelDiff: number; cosine: number }[];
  }
).diff.find((c) => c.name === 'perturbed')!;

test('two compare threads give the same report as the calling thread', async () => {
  for (const [a, b] of [
    ['diff_base.pt', 'diff_perturbed.pt'],
    ['diff_base.pt', 'diff_dtype.pt'],
    ['diff_base.pt', 'dp.pt'],
  ] as const) {
    const here = await diffCheckpoints(join(DIR, a), join(DIR, b), { threads: 0 });
    const threaded = await diffCheckpoints(join(DIR, a), join(DIR, b), { threads: 2 });
    assert.deepEqual({ ...threaded, seconds: 0 }, { ...here, seconds: 0 }, `${a} vs ${b}`);
  }
});

test('tensors split into 64-byte blocks over three threads: the figures torch computes', async () => {
  const a = openCheckpoint(join(DIR, 'diff_base.pt'));
  const b = openCheckpoint(join(DIR, 'diff_perturbed.pt'));
  try {
    const tensorsOf = (ck: typeof a): Map<string, TorchTensor> => new Map((primaryModel(ck.roles)?.entries ?? []).map((e) => [e.key, e.tensor]));
    const ta = tensorsOf(a);
    const tb = tensorsOf(b);
    const pairs = [...ta].map(([key, x]) => ({ key, a: x, b: tb.get(key)! }));
    const threaded = await comparePairs(pairs, { threads: 3, blockBytes: 64 });
    const here = await comparePairs(pairs, { threads: 0, blockBytes: 64 });
    assert.deepEqual(threaded, here);
    const changed = pairs.flatMap((p, i) => changeOf(p.key, p.a, p.b, threaded[i]!) ?? []);
    assert.deepEqual(
      changed.map((c) => c.key),
      ['conv2.weight'],
    );
    const c = changed[0]!;
    assert.ok(pairs.find((p) => p.key === 'conv2.weight')!.a.nbytes > 64 * 8, 'conv2.weight spans several blocks');
    assert.equal(c.maxAbsDiff, perturbed.maxAbsDiff);
    assert.equal(c.differing, 2);
    assert.ok(Math.abs(c.meanAbsDiff! - perturbed.meanAbsDiff) < 1e-15);
    assert.ok(Math.abs(c.maxRelDiff! - perturbed.maxRelDiff) < 1e-12);
    assert.ok(Math.abs(c.cosine! - perturbed.cosine) < 1e-12);
  } finally {
    a.close();
    b.close();
  }
});

test('a cancelled diff stops with a typed error and its threads end', async () => {
  await assert.rejects(
    diffCheckpoints(join(DIR, 'diff_base.pt'), join(DIR, 'diff_perturbed.pt'), { threads: 2, cancelled: () => true }),
    (e: Error & { kind?: string }) => e.kind === 'cancelled',
  );
});
