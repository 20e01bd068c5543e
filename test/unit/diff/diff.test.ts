// `ckpt diff` on files torch 1.13 wrote (generate_fit.py), a real conversion, and the torch 2.x
// DCP folder against the file torch consolidated from it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_RULES } from '../../../shared/presets.ts';
import { convertFile } from '../../../main/convert/convert-file.ts';
import { diffCheckpoints } from '../../../main/diff/diff.ts';
import { REPO, runCli } from '../../helpers/run-cli.ts';

const DIR = join(REPO, 'test/fixtures/fit');
const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as {
  diff: { name: string; maxAbsDiff?: number; meanAbsDiff?: number; cosine?: number; maxRelDiff?: number }[];
};
const tmp = mkdtempSync(join(tmpdir(), 'ckpt-diff-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('a file against its cpu conversion: the same tensors, layout only', async () => {
  const src = join(REPO, 'test/fixtures/torch/ddp_cuda_tagged/rank1.pt');
  const out = join(tmp, 'rank1.cpu.pt');
  const conv = await convertFile(src, { rules: { ...NO_RULES, preset: { name: 'cpu' } }, output: out, force: false });
  assert.equal(conv.verified, true);
  const r = await diffCheckpoints(src, out);
  assert.equal(r.verdict, 'layout-only');
  assert.deepEqual([r.onlyInA, r.onlyInB, r.changed], [[], [], []]);
  assert.equal(r.identical, 16);
  assert.equal(r.devicesChanged.length, 16);
  assert.deepEqual(r.prefixesA, ['module.']);
  const exact = await diffCheckpoints(src, out, { exactKeys: true });
  assert.equal(exact.verdict, 'different');
  assert.equal(exact.onlyInA.length, 16);
});

test('one perturbed tensor: exactly that key, with the max |Δ| torch computes', async () => {
  const want = cases.diff.find((c) => c.name === 'perturbed')!;
  const r = await diffCheckpoints(join(DIR, 'diff_base.pt'), join(DIR, 'diff_perturbed.pt'));
  assert.equal(r.verdict, 'different');
  assert.deepEqual(
    r.changed.map((c) => c.key),
    ['conv2.weight'],
  );
  const c = r.changed[0]!;
  assert.equal(c.reason, 'values');
  assert.equal(c.maxAbsDiff, want.maxAbsDiff);
  assert.equal(c.differing, 2);
  assert.ok(Math.abs(c.meanAbsDiff! - want.meanAbsDiff!) < 1e-15);
  assert.ok(Math.abs(c.maxRelDiff! - want.maxRelDiff!) < 1e-12);
  assert.ok(Math.abs(c.cosine! - want.cosine!) < 1e-12);
  assert.equal(r.identical, 15);
});

test('a dropped key, a dtype change, changed hyper-parameters', async () => {
  const dropped = await diffCheckpoints(join(DIR, 'diff_base.pt'), join(DIR, 'diff_dropped.pt'));
  assert.deepEqual([dropped.onlyInA, dropped.onlyInB, dropped.changed.length], [['bn2.num_batches_tracked'], [], 0]);
  const dtype = await diffCheckpoints(join(DIR, 'diff_base.pt'), join(DIR, 'diff_dtype.pt'));
  assert.deepEqual(
    dtype.changed.map((c) => [c.key, c.reason, c.dtypeA, c.dtypeB, c.maxAbsDiff]),
    [['fc.bias', 'dtype', 'float32', 'float64', 0]],
  );
  const hyper = await diffCheckpoints(join(DIR, 'diff_train7.pt'), join(DIR, 'diff_train8.pt'));
  assert.deepEqual(hyper.values, [
    { path: 'epoch', a: '7', b: '8' },
    { path: 'lr', a: '0.001', b: '0.0005' },
  ]);
  assert.equal(hyper.changed.length + hyper.onlyInA.length, 0);
});

test('a DCP folder against the file torch consolidated from it: identical', async () => {
  const dcp = join(REPO, 'test/fixtures/torch2/dcp');
  const r = await diffCheckpoints(dcp, join(dcp, 'expected_single.pt'));
  assert.equal(r.verdict, 'identical');
  assert.ok(r.identical > 0);
  assert.deepEqual([r.onlyInA, r.onlyInB, r.changed], [[], [], []]);
});

test('the CLI: exit 0 identical, 1 different, 2 input error; --json fields', () => {
  const same = runCli(['diff', join(DIR, 'diff_base.pt'), join(DIR, 'dp.pt')]);
  assert.equal(same.code, 0);
  const diff = runCli(['diff', join(DIR, 'diff_base.pt'), join(DIR, 'diff_perturbed.pt'), '--json']);
  assert.equal(diff.code, 1);
  const j = JSON.parse(diff.stdout);
  for (const f of ['onlyInA', 'onlyInB', 'changed', 'identical']) assert.ok(f in j, f);
  for (const f of ['key', 'reason', 'maxAbsDiff', 'maxRelDiff', 'cosine']) assert.ok(f in j.changed[0], f);
  const bad = runCli(['diff', join(DIR, 'diff_base.pt'), join(DIR, 'no-such.pt')]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});
