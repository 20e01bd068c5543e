import type { ReshardProgress, ReshardReport, ReshardRequest, TensorDifference } from '../../shared/reshard.ts';
import { CheckpointError } from '../errors.ts';
import * as path from 'node:path';
import { recoverInterruptedPublishes } from '../io/publish-journal.ts';
import { planReshard } from './plan.ts';
import { openSource } from '../inputs/sources.ts';
import { throttle } from '../../shared/throttle.ts';
import { executeJob } from './write.ts';

export interface ReshardContext {
  onProgress(p: ReshardProgress): void;
  cancelled(): boolean;
}

/**
 * One re-shard, start to end: open the input as one checkpoint, plan, check that the ranks of a
 * family agree (by hash), write every output to a temporary place, verify it, publish it. A dry
 * run stops after the plan; a family whose ranks differ stops after the comparison unless the
 * request says which rank to take. Runs in a worker thread (job kind `reshard`) or in-process.
 */
export async function reshard(req: ReshardRequest, context: ReshardContext = { onProgress: () => {}, cancelled: () => false }): Promise<ReshardReport> {
  const t0 = performance.now();
  const ctx = throttled(context);
  // a killed earlier run into the same folder is finished or rolled back first, so the plan sees
  // the destination as it really is (its originals back in place, not "already exists" for a mix)
  if (!req.dryRun && req.output) recoverInterruptedPublishes(path.dirname(path.resolve(req.output)));
  const src = openSource(req.inputs);
  try {
    const { plan, job, cast } = planReshard(src, req);
    const report = (over: Partial<ReshardReport>): ReshardReport => {
      const casts = cast();
      return {
        plan,
        differing: [],
        written: false,
        outputs: [],
        verified: false,
        pieceChecks: 0,
        seconds: (performance.now() - t0) / 1000,
        bytesCopied: 0,
        ...(casts ? { cast: casts } : {}),
        ...over,
      };
    };
    if (plan.errors.length || req.dryRun || !job) return report({});
    let differing: TensorDifference[] = [];
    if (src.family) {
      const total = src.family.compareBytes();
      let done = 0;
      differing = src.family.compare(
        (n) => {
          done += n;
          ctx.onProgress({ phase: 'compare', done, total, unit: 'bytes', label: `${src.family!.ranks.length} ranks` });
        },
        () => {
          if (ctx.cancelled()) throw new CheckpointError('cancelled', 're-shard cancelled; nothing was written');
        },
      );
      if (differing.length && req.takeRank === null) return report({ differing });
    }
    const out = await executeJob(job, plan.totalBytes, req.force, ctx);
    const verified = out.outputs.length > 0 && out.outputs.every((o) => o.verified);
    return report({ differing, written: verified, outputs: out.outputs, verified, pieceChecks: out.pieceChecks, bytesCopied: out.bytesCopied });
  } finally {
    src.close();
  }
}

/** At most ~10 progress events a second (and every change of phase), as the worker would post them. */
function throttled(ctx: ReshardContext): ReshardContext {
  const due = throttle();
  let phase = '';
  return {
    cancelled: () => ctx.cancelled(),
    onProgress: (p) => {
      if (!due(p.phase !== phase || (p.total > 0 && p.done >= p.total))) return;
      phase = p.phase;
      ctx.onProgress(p);
    },
  };
}
