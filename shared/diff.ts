/** `ckpt diff`: what changed between two checkpoints. Plain data for the CLI (`--json`) and the UI. */

import type { TensorStats } from './inspect.ts';

export type DiffReason = 'values' | 'dtype' | 'shape' | 'dtype+values';

export interface ChangedTensor {
  key: string;
  /** the key's place among the compared keys, in a's order (the model's depth, for a chart) */
  index: number;
  reason: DiffReason;
  dtypeA: string;
  dtypeB: string;
  shapeA: number[];
  shapeB: number[];
  /** floating tensors of one shape: statistics of b − a (null otherwise) */
  maxAbsDiff: number | null;
  maxRelDiff: number | null;
  meanAbsDiff: number | null;
  cosine: number | null;
  /** elements that are NaN / ±Inf in b and finite in a */
  nanAppeared: number;
  infAppeared: number;
  /** elements that differ */
  differing: number;
}

/** One key's tensor on both sides, binned over one range so the two histograms overlay. */
export interface DiffHistograms {
  key: string;
  a: TensorStats;
  b: TensorStats;
}

export interface ValueChange {
  path: string;
  a: string | null;
  b: string | null;
}

export interface DiffReport {
  a: string;
  b: string;
  /** identical: same keys, devices, values; layout-only: same tensors under other keys, devices or containers */
  verdict: 'identical' | 'layout-only' | 'different';
  /** keys compared raw (`--exact-keys`) or with wrapper prefixes removed */
  exactKeys: boolean;
  prefixesA: string[];
  prefixesB: string[];
  onlyInA: string[];
  onlyInB: string[];
  changed: ChangedTensor[];
  identical: number;
  /** tensors whose device tag differs (values equal) */
  devicesChanged: { key: string; a: string; b: string }[];
  /** non-tensor entries (epoch, learning rate, hyper-parameters) that differ */
  values: ValueChange[];
  bytesCompared: number;
  seconds: number;
}
