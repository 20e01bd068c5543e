import type { ChangedTensor } from '../../shared/diff.ts';
import { toFloat64 } from '../verify/tensor-values.ts';

/** The dtypes whose elements are compared as numbers (their difference statistics computed). */
export const NUMERIC = new Set(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'uint64', 'int32', 'uint32', 'int16', 'uint16', 'int8', 'uint8']);

/**
 * Running figures of b − a over a range of elements. Ranges are summed in a fixed order (block 0,
 * 1, …) whichever thread computed each, so a report does not depend on the number of threads.
 */
export interface ValueStats {
  maxAbs: number;
  maxRel: number;
  sumAbs: number;
  dot: number;
  aa: number;
  bb: number;
  nan: number;
  inf: number;
  differing: number;
  /** elements in the figures (a NaN pair, or a NaN/Inf appearing in b, is left out) */
  counted: number;
}

export function emptyStats(): ValueStats {
  return { maxAbs: 0, maxRel: 0, sumAbs: 0, dot: 0, aa: 0, bb: 0, nan: 0, inf: 0, differing: 0, counted: 0 };
}

const VIEWS: Record<string, new (b: ArrayBuffer, o: number, n: number) => ArrayLike<number>> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
};
const SIZE: Record<string, number> = { float32: 4, float64: 8, int32: 4, uint32: 4, int16: 2, uint16: 2, int8: 1, uint8: 1 };

/** The elements of little-endian bytes as numbers: a typed view where aligned (no copy), else decoded. */
export function numbersOf(bytes: Uint8Array, dtype: string): ArrayLike<number> {
  const View = VIEWS[dtype];
  const size = SIZE[dtype] ?? 0;
  if (View && bytes.byteOffset % size === 0) return new View(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / size);
  return toFloat64(bytes, dtype);
}

/** Adds elements a[i], b[i] (i < n) to the figures: NaN/Inf that appear in b where a is finite are counted, not measured. */
export function addValues(s: ValueStats, va: ArrayLike<number>, vb: ArrayLike<number>, n: number): void {
  let { maxAbs, maxRel, sumAbs, dot, aa, bb, nan, inf, differing, counted } = s;
  for (let i = 0; i < n; i++) {
    const x = va[i]!;
    const y = vb[i]!;
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) {
      if (!Number.isNaN(x)) {
        dot += x * y;
        aa += x * x;
        bb += y * y;
        counted++;
      }
      continue;
    }
    differing++;
    if (Number.isFinite(x) && !Number.isFinite(y)) {
      if (Number.isNaN(y)) nan++;
      else inf++;
      continue;
    }
    const d = Math.abs(y - x);
    if (d > maxAbs) maxAbs = d;
    if (x !== 0 && d / Math.abs(x) > maxRel) maxRel = d / Math.abs(x);
    sumAbs += d;
    dot += x * y;
    aa += x * x;
    bb += y * y;
    counted++;
  }
  Object.assign(s, { maxAbs, maxRel, sumAbs, dot, aa, bb, nan, inf, differing, counted });
}

/** Adds the figures of a later range. */
export function mergeStats(into: ValueStats, s: ValueStats): void {
  // never NaN: addValues keeps a maximum only when `d > max` holds
  if (s.maxAbs > into.maxAbs) into.maxAbs = s.maxAbs;
  if (s.maxRel > into.maxRel) into.maxRel = s.maxRel;
  into.sumAbs += s.sumAbs;
  into.dot += s.dot;
  into.aa += s.aa;
  into.bb += s.bb;
  into.nan += s.nan;
  into.inf += s.inf;
  into.differing += s.differing;
  into.counted += s.counted;
}

type Figures = Pick<ChangedTensor, 'maxAbsDiff' | 'maxRelDiff' | 'meanAbsDiff' | 'cosine' | 'nanAppeared' | 'infAppeared' | 'differing'>;

/** The report's figures: mean |Δ| over the measured elements, the cosine of a and b as vectors. */
export function finishStats(s: ValueStats): Figures {
  const cosine = s.aa === 0 && s.bb === 0 ? 1 : s.aa === 0 || s.bb === 0 ? 0 : s.dot / Math.sqrt(s.aa * s.bb);
  return {
    maxAbsDiff: s.maxAbs,
    maxRelDiff: s.maxRel,
    meanAbsDiff: s.counted ? s.sumAbs / s.counted : 0,
    cosine,
    nanAppeared: s.nan,
    infAppeared: s.inf,
    differing: s.differing,
  };
}
