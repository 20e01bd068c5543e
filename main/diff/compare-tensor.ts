import type { ChangedTensor } from '../../shared/diff.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import type { Compared } from './compare-pool.ts';
import { finishStats } from './value-stats.ts';

const NO_FIGURES = { maxAbsDiff: null, maxRelDiff: null, meanAbsDiff: null, cosine: null, nanAppeared: 0, infAppeared: 0, differing: 0 };

/**
 * How two tensors under one key differ, or null when they hold the same bytes. Numbers of one
 * shape are compared element by element: max |b−a|, max |b−a|/|a| (over a ≠ 0), mean |b−a|, the
 * cosine of the two as vectors, and NaN/Inf that appear in b where a is finite (left out of the
 * other figures).
 */
export function changeOf(key: string, a: TorchTensor, b: TorchTensor, c: Compared): Omit<ChangedTensor, 'index'> | null {
  if (c.same) return null;
  const base = { key, dtypeA: a.dtype.name, dtypeB: b.dtype.name, shapeA: [...a.shape], shapeB: [...b.shape] };
  if (c.plan === 'shape') return { ...base, reason: 'shape', ...NO_FIGURES };
  if (!c.stats) return { ...base, reason: c.plan === 'opaque' ? 'dtype' : 'values', ...NO_FIGURES, differing: a.numel };
  const figures = finishStats(c.stats);
  return { ...base, reason: c.plan === 'stats' ? (figures.differing ? 'dtype+values' : 'dtype') : 'values', ...figures };
}
