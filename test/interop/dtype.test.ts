// `--dtype` end to end: convert and reshard write a checkpoint holding floats of every dtype with
// subnormals, NaN payloads, ±Inf, ±0 and values beyond float16's range (test/fixtures/cast/
// extremes.pt, written by torch 1.13), and torch 1.13 finds each floating tensor bit for bit equal
// to its own `.to(dtype)` of the source, ints and bools and --keep-dtype matches untouched, the
// tied pair still one tensor, and the reported overflow/underflow counts equal to its own.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CastSummary } from '../../shared/presets.ts';
import { FIXTURES, PY, removeTemps, runCliAsync, tempDir, torchSkipReason } from './helpers.ts';

const skip = torchSkipReason() ?? false;
const SOURCE = join(FIXTURES, 'cast', 'extremes.pt');
after(removeTemps);

test("convert and reshard --dtype give torch's own .to() bit for bit, and its overflow/underflow counts", { skip }, async () => {
  const out = tempDir('dtype');
  const checks: { id: string; source: string; file: string; dtype: string; keep: string | null; overflow: number; underflow: number }[] = [];
  for (const [dtype, name] of [
    ['fp16', 'float16'],
    ['bf16', 'bfloat16'],
    ['fp32', 'float32'],
  ] as const) {
    for (const [cmd, keep] of [
      ['convert', '^norm\\.'],
      ['reshard', null],
    ] as const) {
      const file = join(out, `${cmd}-${dtype}.pt`);
      const args = cmd === 'convert' ? ['convert', SOURCE, '--preset', 'cpu'] : ['reshard', SOURCE, '--to', 'single'];
      const r = await runCliAsync([...args, '--dtype', dtype, ...(keep ? ['--keep-dtype', keep] : []), '-o', file, '--json']);
      assert.equal(r.code, 0, `${cmd} ${dtype}: ${r.stderr}`);
      const { report } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { report: { cast: CastSummary; verified: boolean } };
      assert.equal(report.verified, true);
      assert.equal(report.cast.dtype, name);
      if (keep && dtype !== 'fp32') assert.equal(report.cast.kept, 1); // norm.weight is float32 already
      checks.push({ id: `${cmd} ${dtype}`, source: SOURCE, file, dtype: name, keep, overflow: report.cast.overflow, underflow: report.cast.underflow });
    }
  }
  const r = spawnSync(PY, ['-I', '-B', join(FIXTURES, 'cast', 'check_cast.py')], {
    input: JSON.stringify({ checks }),
    encoding: 'utf8',
    timeout: 240_000,
    cwd: tmpdir(),
  });
  assert.equal(r.status, 0, r.stderr);
  const results = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: { id: string; errors: string[] }[] }).results;
  for (const x of results) assert.deepEqual(x.errors, [], x.id);
  assert.ok(checks.find((c) => c.id === 'convert fp16')!.overflow > 0, 'values beyond float16 overflow');
  assert.ok(checks.find((c) => c.id === 'convert fp16')!.underflow > 0, 'tiny values underflow');
});

test('--keep-dtype without --dtype, and an unknown dtype, are usage errors', { skip }, async () => {
  const a = await runCliAsync(['convert', SOURCE, '--preset', 'cpu', '--keep-dtype', 'x', '-o', join(tempDir('dtype-usage'), 'x.pt')]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--keep-dtype goes with --dtype/);
  const b = await runCliAsync(['reshard', SOURCE, '--to', 'single', '--dtype', 'fp8', '-o', join(tempDir('dtype-usage'), 'y.pt')]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /--dtype "fp8": give fp32, bf16 or fp16/);
});
