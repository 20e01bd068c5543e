import type { TensorStats } from '../../shared/inspect.ts';
import { fail } from '../errors.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { readTensorBytes } from '../checkpoint/tensor-bytes.ts';

/** Statistics of one tensor of a checkpoint file, found by its path. */
export function tensorStats(file: string, path: (string | number)[], bins = 64): TensorStats {
  const c = openCheckpoint(file);
  try {
    const key = JSON.stringify(path);
    const hit = c.tensors.find((t) => JSON.stringify(t.path) === key);
    if (!hit) fail('usage', `${file}: no tensor at ${path.join('/')}`, file);
    return statsOf(hit.tensor, bins);
  } finally {
    c.close();
  }
}

/** Decodes element i of a little-endian buffer as a number, for the dtypes that are numbers. */
function decoder(dtype: string, dv: DataView): ((i: number) => number) | null {
  switch (dtype) {
    case 'float32':
      return (i) => dv.getFloat32(i * 4, true);
    case 'float64':
      return (i) => dv.getFloat64(i * 8, true);
    case 'float16':
      return (i) => halfToFloat(dv.getUint16(i * 2, true));
    case 'bfloat16':
      return (i) => bf16ToFloat(dv.getUint16(i * 2, true));
    case 'int8':
      return (i) => dv.getInt8(i);
    case 'uint8':
    case 'bool':
      return (i) => dv.getUint8(i);
    case 'int16':
      return (i) => dv.getInt16(i * 2, true);
    case 'uint16':
      return (i) => dv.getUint16(i * 2, true);
    case 'int32':
      return (i) => dv.getInt32(i * 4, true);
    case 'uint32':
      return (i) => dv.getUint32(i * 4, true);
    case 'int64':
      return (i) => Number(dv.getBigInt64(i * 8, true));
    case 'uint64':
      return (i) => Number(dv.getBigUint64(i * 8, true));
  }
  return null;
}

/** The statistics of a tensor, its histogram spanning its own [min, max]. */
export function statsOf(t: TorchTensor, bins = 64): TensorStats {
  const d = decodedStats(t);
  return d.withHistogram(bins, d.range);
}

/**
 * The statistics of two tensors whose histograms span the same range ([min of the two mins, max
 * of the two maxes]) so they overlay bin for bin. Each tensor is read and decoded once.
 */
export function overlaidStats(a: TorchTensor, b: TorchTensor, bins = 64): { a: TensorStats; b: TensorStats } {
  const da = decodedStats(a);
  const db = decodedStats(b);
  if (!da.range || !db.range) return { a: da.withHistogram(bins, da.range), b: db.withHistogram(bins, db.range) };
  const range = { lo: Math.min(da.range.lo, db.range.lo), hi: Math.max(da.range.hi, db.range.hi) };
  return { a: da.withHistogram(bins, range), b: db.withHistogram(bins, range) };
}

interface DecodedStats {
  /** [min, max] of the finite values; null when there are none (or the dtype is not decoded) */
  range: { lo: number; hi: number } | null;
  /** the statistics with a histogram of `bins` over `range` (none when range is null) */
  withHistogram(bins: number, range: { lo: number; hi: number } | null): TensorStats;
}

/** A tensor's bytes read once, its moments computed; the histogram is binned on request. */
function decodedStats(t: TorchTensor): DecodedStats {
  const base = { dtype: t.dtype.name, numel: t.numel, nan: 0, inf: 0 };
  const bytes = readTensorBytes(t);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const get = decoder(t.dtype.name, dv);
  if (!get) {
    const stats: TensorStats = {
      ...base,
      min: null,
      max: null,
      mean: null,
      std: null,
      histogram: null,
      note: `${t.dtype.name} values are not decoded for statistics`,
    };
    return { range: null, withHistogram: () => stats };
  }
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSq = 0;
  let finite = 0;
  let nan = 0;
  let inf = 0;
  // Welford-free two-moment sums in float64 are fine for display; mean and std of finite values.
  for (let i = 0; i < t.numel; i++) {
    const v = get(i);
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
    else {
      finite++;
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      sumSq += v * v;
    }
  }
  if (!finite) {
    const stats: TensorStats = { ...base, nan, inf, min: null, max: null, mean: null, std: null, histogram: null };
    return { range: null, withHistogram: () => stats };
  }
  const mean = sum / finite;
  const std = Math.sqrt(Math.max(0, sumSq / finite - mean * mean));
  return {
    range: { lo: min, hi: max },
    withHistogram: (bins, range) => {
      const { lo, hi } = range ?? { lo: min, hi: max };
      const counts = new Array<number>(bins).fill(0);
      const width = (hi - lo) / bins || 1;
      for (let i = 0; i < t.numel; i++) {
        const v = get(i);
        if (!Number.isFinite(v)) continue;
        counts[Math.max(0, Math.min(bins - 1, Math.floor((v - lo) / width)))]!++;
      }
      return { ...base, nan, inf, min, max, mean, std, histogram: { lo, hi, counts } };
    },
  };
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

export function bf16ToFloat(b: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, b << 16);
  return dv.getFloat32(0);
}
