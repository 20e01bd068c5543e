/**
 * Element casts done bit for bit as torch's CPU `Tensor.to(dtype)` does them, so a converted file
 * holds exactly what `t.to(dtype)` would give:
 * - float32 → bfloat16: c10/util/BFloat16.h `round_to_nearest_even` (add 0x7FFF plus the lowest
 *   kept bit, keep the top 16 bits). NaN: torch's vectorised CPU path
 *   (aten/src/ATen/cpu/vec/vec256/vec256_bfloat16.h `cvtfp32_bf16`) writes 0xFFFF for every NaN.
 * - float32 → float16: round to nearest even with subnormals (c10/util/Half.h
 *   `fp16_ieee_from_fp32_value`); a NaN keeps its sign and becomes 0x7E00, as torch 1.13 does
 *   (torch 2.x's F16C path keeps the top payload bits as well: only NaN payloads differ).
 * - float16 → float32/float64: exact; a NaN keeps its payload and is made quiet (`vcvtph2ps`).
 * - bfloat16 → float32/float64: exact (`f32_from_bits`).
 * - float16 → bfloat16 gives NaN 0x7FC0, bfloat16 → float16 gives sign|0x7E00 (the scalar c10
 *   constructors: torch converts these through a float one element at a time).
 * - float64 → anything narrower: `static_cast<float>` first (c10::Half and c10::BFloat16 are
 *   built from a float), so float64 → float16 rounds twice, as torch does.
 * - integers and bool → float: `static_cast<float>` / `<double>`, round to nearest even.
 * The NaN rules were checked against torch 1.13's output (test/fixtures/cast, generate_cast.py).
 */
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import type { TensorSource } from './tensor-source.ts';

export const CASTABLE_FLOATS = new Set(['float64', 'float32', 'float16', 'bfloat16']);
const INTS = new Set(['int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);

/** Values a cast turned from finite into ±Inf, and from non-zero into ±0. */
export interface CastCounts {
  overflow: number;
  underflow: number;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f32FromBits(bits: number): number {
  u32[0] = bits;
  return f32[0]!;
}
function bitsOfF32(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** float32 bits → bfloat16 bits (c10 `round_to_nearest_even`). */
export function bf16FromF32Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits → float16 bits (c10 `fp16_ieee_from_fp32_value`: round to nearest even, subnormals, NaN → sign|0x7E00). */
export function f16FromF32Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 rounds to Inf
  if (abs < 0x38800000) {
    // float16 subnormal (or zero): value / 2^-24, rounded to nearest even
    if (abs < 0x33000000) return sign; // < 2^-25 rounds to 0 (2^-25 itself is a tie to even 0)
    const exp = abs >>> 23;
    const mant = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - exp; // mant * 2^(exp-127-23) / 2^-24 = mant >> (126 - exp) ... with rounding
    const q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    const r = rem > half || (rem === half && q & 1) ? q + 1 : q;
    return sign | r;
  }
  // normal: rebias the exponent, round 13 mantissa bits away
  const q = (abs - 0x38000000) >>> 13;
  const rem = abs & 0x1fff;
  const r = rem > 0x1000 || (rem === 0x1000 && q & 1) ? q + 1 : q;
  return sign | r;
}

/** float16 bits → float32 bits (exact; a NaN keeps its payload, made quiet, as `vcvtph2ps`). */
export function f32BitsFromF16(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13) | (mant ? 0x400000 : 0)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    return (sign | bitsOfF32(mant * 2 ** -24)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/** float64 → float32 bits (`static_cast<float>`; a NaN keeps its sign and top payload bits, made quiet, as x86 cvtsd2ss). */
function f32BitsFromF64(hi: number, lo: number, x: number): number {
  if (Number.isNaN(x)) return ((hi & 0x80000000) | 0x7fc00000 | ((hi & 0x000fffff) << 3) | (lo >>> 29)) >>> 0;
  return bitsOfF32(x);
}

/** int64 → nearest float (ties to even), as `static_cast<float>(int64_t)`: no double rounding above 2^53. */
export function floatFromInt64(v: bigint, mantissaBits: number): number {
  const n = Number(v);
  if (n >= -(2 ** 53) && n <= 2 ** 53) return mantissaBits === 24 ? Math.fround(n) : n;
  const neg = v < 0n;
  let a = neg ? -v : v;
  const len = a.toString(2).length;
  const drop = BigInt(len - mantissaBits);
  const q = a >> drop;
  const rem = a & ((1n << drop) - 1n);
  const half = 1n << (drop - 1n);
  a = (rem > half || (rem === half && (q & 1n) === 1n) ? q + 1n : q) << drop;
  const r = Number(a);
  return neg ? -r : r;
}

/** Whether `to` is a dtype `--dtype` can produce and `from` one it casts (other dtypes are left as they are). */
export function castsTo(from: DTypeInfo, to: DTypeInfo): boolean {
  return from.name !== to.name && CASTABLE_FLOATS.has(to.name) && (CASTABLE_FLOATS.has(from.name) || INTS.has(from.name));
}

function isFinite32(bits: number): boolean {
  return (bits & 0x7f800000) !== 0x7f800000;
}

/**
 * Casts `count` elements of `from` in `src` (little-endian) to `to` in `dst`, counting values that
 * overflow to ±Inf and non-zero values that underflow to ±0.
 */
export function castElements(from: DTypeInfo, to: DTypeInfo, src: Uint8Array, dst: Uint8Array, count: number, counts: CastCounts): void {
  const sv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  // each element goes through float32 bits (or a double for float64 targets and int sources)
  const readF32Bits = (i: number): number => {
    switch (from.name) {
      case 'float32':
        return sv.getUint32(i * 4, true);
      case 'bfloat16':
        return (sv.getUint16(i * 2, true) << 16) >>> 0;
      case 'float16':
        return f32BitsFromF16(sv.getUint16(i * 2, true));
      case 'float64': {
        const lo = sv.getUint32(i * 8, true);
        const hi = sv.getUint32(i * 8 + 4, true);
        return f32BitsFromF64(hi, lo, sv.getFloat64(i * 8, true));
      }
      default:
        return bitsOfF32(intValue(i, 24));
    }
  };
  const intValue = (i: number, mant: number): number => {
    switch (from.name) {
      case 'int64':
        return floatFromInt64(sv.getBigInt64(i * 8, true), mant);
      case 'int32':
        return mant === 24 ? Math.fround(sv.getInt32(i * 4, true)) : sv.getInt32(i * 4, true);
      case 'int16':
        return sv.getInt16(i * 2, true);
      case 'int8':
        return sv.getInt8(i);
      case 'uint8':
        return sv.getUint8(i);
      case 'bool':
        return sv.getUint8(i) ? 1 : 0;
      default:
        return fail('internal', `no cast from ${from.name}`);
    }
  };
  if (to.name === 'float64') {
    for (let i = 0; i < count; i++) {
      if (INTS.has(from.name)) {
        dv.setFloat64(i * 8, intValue(i, 53), true);
        continue;
      }
      const b = readF32Bits(i);
      if ((b & 0x7fffffff) > 0x7f800000) {
        // NaN: sign and payload widened, made quiet (`vcvtps2pd`)
        dv.setUint32(i * 8 + 4, ((b & 0x80000000) | 0x7ff80000 | ((b & 0x7fffff) >>> 3)) >>> 0, true);
        dv.setUint32(i * 8, ((b & 7) << 29) >>> 0, true);
      } else dv.setFloat64(i * 8, f32FromBits(b), true);
    }
    return;
  }
  for (let i = 0; i < count; i++) {
    const b = readF32Bits(i);
    // finite and non-zero in the source (a float32 overflow from float64 is counted too)
    let finite: boolean;
    let nonzero: boolean;
    if (from.name === 'float64') {
      const x = sv.getFloat64(i * 8, true);
      finite = Number.isFinite(x);
      nonzero = x !== 0;
    } else {
      finite = isFinite32(b);
      nonzero = (b & 0x7fffffff) !== 0;
    }
    let out: number;
    let inf: boolean;
    if (to.name === 'float32') {
      dv.setUint32(i * 4, b, true);
      out = b & 0x7fffffff;
      inf = out === 0x7f800000;
    } else {
      let h = to.name === 'bfloat16' ? bf16FromF32Bits(b) : f16FromF32Bits(b);
      if (!finite && (b & 0x7fffff) !== 0) {
        // NaN through the scalar c10 constructors (see the module comment)
        if (from.name === 'float16' && to.name === 'bfloat16') h = 0x7fc0;
        else if (from.name === 'bfloat16' && to.name === 'float16') h = ((b >>> 16) & 0x8000) | 0x7e00;
      }
      dv.setUint16(i * 2, h, true);
      out = h & 0x7fff;
      inf = out === (to.name === 'bfloat16' ? 0x7f80 : 0x7c00);
    }
    if (finite && inf) counts.overflow++;
    else if (finite && nonzero && out === 0) counts.underflow++;
  }
}

/** A source's elements cast to another dtype (see the module comment), produced on demand. */
export class CastSource implements TensorSource {
  readonly shape: readonly number[];
  readonly numel: number;
  private buf: Uint8Array = new Uint8Array(0);
  /** counted over the first in-order read of the elements (the writer's); later reads (verification) are not counted again */
  readonly counts: CastCounts = { overflow: 0, underflow: 0 };
  private countedTo = 0;
  private readonly scratch: CastCounts = { overflow: 0, underflow: 0 };
  constructor(
    readonly base: TensorSource,
    readonly dtype: DTypeInfo,
  ) {
    if (!castsTo(base.dtype, dtype)) fail('internal', `no cast from ${base.dtype.name} to ${dtype.name}`);
    this.shape = base.shape;
    this.numel = base.numel;
  }
  describe(): string {
    return `${this.base.describe()} as ${this.dtype.name}`;
  }
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void {
    const need = count * this.base.dtype.size;
    if (this.buf.length < need) this.buf = new Uint8Array(need);
    this.base.readElements(first, count, this.buf, 0);
    const counting = first === this.countedTo;
    castElements(
      this.base.dtype,
      this.dtype,
      this.buf.subarray(0, need),
      out.subarray(outAt, outAt + count * this.dtype.size),
      count,
      counting ? this.counts : this.scratch,
    );
    if (counting) this.countedTo += count;
  }
}
