// `--dtype` casts against torch 1.13's own `Tensor.to(dtype)`: every float16 and bfloat16 bit
// pattern, and float32/float64/int64 inputs holding ±0, subnormals, ±Inf, NaN payloads, rounding
// ties and values beyond float16's range (test/fixtures/cast/generate_cast.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dtypeByName } from '../../../shared/dtypes.ts';
import { CastSource, castElements, floatFromInt64, type CastCounts } from '../../../main/formats/values/dtype-cast.ts';
import type { TensorSource } from '../../../main/formats/values/tensor-source.ts';

const FIX = fileURLToPath(new URL('../../fixtures/cast/', import.meta.url));
interface Case {
  from: string;
  to: string;
  count: number;
  sha256: string;
  nans: number;
  overflow: number;
  underflow: number;
  nan_equal: boolean;
}
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as { torch: string; cases: Case[] };
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function isNan(to: string, out: Uint8Array, i: number): boolean {
  const v = new DataView(out.buffer, out.byteOffset);
  if (to === 'float64') return Number.isNaN(v.getFloat64(i * 8, true));
  if (to === 'float32') return Number.isNaN(v.getFloat32(i * 4, true));
  const h = v.getUint16(i * 2, true) & 0x7fff;
  return to === 'float16' ? h > 0x7c00 : h > 0x7f80;
}

for (const c of expected.cases) {
  test(`${c.from} → ${c.to} is bit for bit torch ${expected.torch}'s .to()`, () => {
    const from = dtypeByName(c.from)!;
    const to = dtypeByName(c.to)!;
    const input = fs.readFileSync(path.join(FIX, `${c.from}.in.bin`));
    assert.equal(input.length, c.count * from.size);
    const out = new Uint8Array(c.count * to.size);
    const counts: CastCounts = { overflow: 0, underflow: 0 };
    castElements(from, to, input, out, c.count, counts);
    let nans = 0;
    for (let i = 0; i < c.count; i++) if (isNan(c.to, out, i)) nans++;
    assert.equal(nans, c.nans, 'NaN count');
    if (c.nan_equal) {
      // torch's own NaN bits differ between its vectorised and scalar paths here; NaNs compared as NaNs
      const v = new DataView(out.buffer);
      for (let i = 0; i < c.count; i++) if (isNan(c.to, out, i)) v.setUint16(i * 2, 0x7fc0, true);
    }
    assert.equal(sha(out), c.sha256, 'output bytes');
    assert.deepEqual(counts, { overflow: c.overflow, underflow: c.underflow });
  });
}

test('CastSource casts any range of its source, and counts over what it read', () => {
  const f32 = dtypeByName('float32')!;
  const values = new Float32Array([1, 70000, 1e-9, -0, 3.5, Number.NaN]);
  const base: TensorSource = {
    dtype: f32,
    shape: [2, 3],
    numel: 6,
    describe: () => 'six floats',
    readElements: (first, count, out, at) => out.set(new Uint8Array(values.buffer, first * 4, count * 4), at),
  };
  const cast = new CastSource(base, dtypeByName('float16')!);
  const out = new Uint8Array(12);
  cast.readElements(0, 2, out, 0);
  cast.readElements(2, 4, out, 4);
  assert.deepEqual([...new Uint16Array(out.buffer)], [0x3c00, 0x7c00, 0x0000, 0x8000, 0x4300, 0x7e00]);
  assert.deepEqual(cast.counts, { overflow: 1, underflow: 1 });
  assert.deepEqual(cast.shape, [2, 3]);
});

test('int64 → float rounds once to nearest even, also above 2^53', () => {
  assert.equal(floatFromInt64(2n ** 53n + 1n, 53), 2 ** 53);
  assert.equal(floatFromInt64(2n ** 53n + 3n, 53), 2 ** 53 + 4);
  assert.equal(floatFromInt64(2n ** 24n + 1n, 24), 2 ** 24);
  assert.equal(floatFromInt64(-(2n ** 63n), 24), -(2 ** 63));
  // 2^62 + 2^38 + 1: a double rounding through float64 would give 2^62, one rounding gives 2^62 + 2^39
  assert.equal(floatFromInt64(2n ** 62n + 2n ** 38n + 1n, 24), 2 ** 62 + 2 ** 39);
});
