import type { JobContext, JobRequest, JobResults } from './protocol.ts';
import { convertFile } from '../convert/convert-file.ts';
import { packConversionReport, type PackedConversionReport } from '../convert/packed-report.ts';

type ConvertRequest = Extract<JobRequest, { kind: 'convert' }>;

/** The cancel flag as the conversion asks for it. */
export function cancelSignal(ctx: JobContext): AbortSignal {
  return {
    get aborted() {
      return ctx.cancelled();
    },
  } as AbortSignal;
}

/** A `convert` job without `fit` (run-job.ts runs the fit ones): one file, its report packed for the pool. */
export async function convertJob(req: ConvertRequest, ctx: JobContext): Promise<PackedConversionReport> {
  const report = await convertFile(req.source, {
    rules: req.rules,
    output: req.output,
    force: req.force,
    onProgress: ctx.onProgress,
    signal: cancelSignal(ctx),
    syncFolder: req.syncFolder ?? true,
    keepVerifiedExisting: req.keepVerifiedExisting ?? false,
    ...(ctx.onWaiting ? { onWaiting: ctx.onWaiting } : {}),
  });
  return packConversionReport(report);
}

/** The kinds a folder conversion sends (jobs/batch.ts): what convert-worker.ts answers. */
export type ConvertJobKind = 'convert' | 'compare-ranks';
export type ConvertJobRequest = Extract<JobRequest, { kind: ConvertJobKind }>;
export type ConvertJobResults = Pick<JobResults, ConvertJobKind>;
