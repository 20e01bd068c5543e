/**
 * Element values of little-endian tensor bytes, and casts between the float dtypes a checkpoint
 * and a graph may disagree on (a half-precision checkpoint verified through a float32 graph).
 * float16 and bfloat16 round to nearest even, as torch's `.to()` does (c10/util/Half.h,
 * c10/util/BFloat16.h `round_to_nearest_even`).
 */
import { fail } from '../errors.ts';

export const FLOAT_DTYPES = new Set(['float32', 'float64', 'float16', 'bfloat16']);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++;
  return sign | r;
}

export function bfloatToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

export function floatToBfloat(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if (Number.isNaN(v)) return 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The elements as doubles. Integers beyond 2^53 lose precision (weights never hold such). */
export function toFloat64(bytes: Uint8Array, dtype: string): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = DTYPE_SIZE[dtype];
  if (!size) fail('unsupported', `tensors of dtype ${dtype} cannot be compared or cast by verify`);
  const n = bytes.length / size;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case 'float32':
        out[i] = dv.getFloat32(o, true);
        break;
      case 'float64':
        out[i] = dv.getFloat64(o, true);
        break;
      case 'float16':
        out[i] = halfToFloat(dv.getUint16(o, true));
        break;
      case 'bfloat16':
        out[i] = bfloatToFloat(dv.getUint16(o, true));
        break;
      case 'int64':
        out[i] = Number(dv.getBigInt64(o, true));
        break;
      case 'uint64':
        out[i] = Number(dv.getBigUint64(o, true));
        break;
      case 'int32':
        out[i] = dv.getInt32(o, true);
        break;
      case 'uint32':
        out[i] = dv.getUint32(o, true);
        break;
      case 'int16':
        out[i] = dv.getInt16(o, true);
        break;
      case 'uint16':
        out[i] = dv.getUint16(o, true);
        break;
      case 'int8':
        out[i] = dv.getInt8(o);
        break;
      case 'uint8':
      case 'bool':
        out[i] = bytes[o]!;
        break;
    }
  }
  return out;
}

const DTYPE_SIZE: Record<string, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  uint64: 8,
  int32: 4,
  uint32: 4,
  int16: 2,
  uint16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Doubles written as `dtype` (rounded to nearest even); integers are truncated toward zero. */
export function fromFloat64(values: Float64Array, dtype: string): Uint8Array {
  const size = DTYPE_SIZE[dtype];
  if (!size) fail('unsupported', `cannot write tensors of dtype ${dtype}`);
  const out = new Uint8Array(values.length * size);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const o = i * size;
    switch (dtype) {
      case 'float32':
        dv.setFloat32(o, v, true);
        break;
      case 'float64':
        dv.setFloat64(o, v, true);
        break;
      case 'float16':
        dv.setUint16(o, floatToHalf(v), true);
        break;
      case 'bfloat16':
        dv.setUint16(o, floatToBfloat(v), true);
        break;
      case 'int64':
        dv.setBigInt64(o, BigInt(Math.trunc(v)), true);
        break;
      case 'uint64':
        dv.setBigUint64(o, BigInt(Math.trunc(v)), true);
        break;
      case 'int32':
        dv.setInt32(o, v, true);
        break;
      case 'uint32':
        dv.setUint32(o, v, true);
        break;
      case 'int16':
        dv.setInt16(o, v, true);
        break;
      case 'uint16':
        dv.setUint16(o, v, true);
        break;
      case 'int8':
        dv.setInt8(o, v);
        break;
      case 'uint8':
        out[o] = v;
        break;
      case 'bool':
        out[o] = v ? 1 : 0;
        break;
    }
  }
  return out;
}

/** Rounding after each arithmetic step in `dtype` (float32 emulated exactly: IEEE +,-,*,/,sqrt in double then rounded are correctly rounded). */
export function rounder(dtype: string): (x: number) => number {
  if (dtype === 'float64') return (x) => x;
  if (dtype === 'float16') return (x) => halfToFloat(floatToHalf(x));
  if (dtype === 'bfloat16') return (x) => bfloatToFloat(floatToBfloat(x));
  return Math.fround;
}
