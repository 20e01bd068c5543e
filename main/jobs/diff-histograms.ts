import type { DiffHistograms } from '../../shared/diff.ts';
import { tensorOfDiffKey } from '../diff/diff.ts';
import { fail } from '../errors.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { overlaidStats } from './tensor-stats.ts';

/**
 * The Diff view's click on a row: the key's tensor in a and in b, each binned over the range of
 * both ([min of the two mins, max of the two maxes]) so the two histograms overlay bin for bin.
 */
export function diffHistograms(fileA: string, fileB: string, key: string, exactKeys: boolean, bins: number): DiffHistograms {
  const ckA = openCheckpoint(fileA, { shardedRanks: 'consolidate' });
  try {
    const ckB = openCheckpoint(fileB, { shardedRanks: 'consolidate' });
    try {
      const ta = tensorOfDiffKey(ckA, key, exactKeys);
      const tb = tensorOfDiffKey(ckB, key, exactKeys);
      if (!ta || !tb) fail('usage', `${ta ? fileB : fileA}: has no tensor '${key}' to compare`, ta ? fileB : fileA);
      return { key, ...overlaidStats(ta, tb, bins) };
    } finally {
      ckB.close();
    }
  } finally {
    ckA.close();
  }
}
