import type { JobContext, JobRequest, JobResults } from './protocol.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { cancelSignal, convertJob } from './convert-job.ts';
import { packConversionReport } from '../convert/packed-report.ts';
import { tensorStats } from './tensor-stats.ts';
import { compareRanks } from '../inputs/family.ts';
import { findDroppedFile } from '../inputs/find-file.ts';
import { listDirectory } from '../inputs/list-directory.ts';
import { planBatch } from './batch.ts';
import { checkPlannedItems } from './batch-dry-run.ts';
import { PreviewCache } from './preview-cache.ts';

/** This thread's preview cache: the Convert view previews one file many times as its rules change. */
const previews = new PreviewCache();

/** Runs one job in the current thread: the worker calls this, and so can tests and the CLI. */
export async function runJob<K extends JobRequest['kind']>(request: JobRequest & { kind: K }, ctx: JobContext): Promise<JobResults[K]> {
  const req = request as JobRequest;
  switch (req.kind) {
    case 'inspect': {
      const c = openCheckpoint(req.file);
      try {
        return c.report as JobResults[K];
      } finally {
        c.close();
      }
    }
    case 'convert': {
      if (!req.fit) return (await convertJob(req, ctx)) as JobResults[K];
      if (!req.output) throw new Error('a fit conversion needs an output path');
      const { convertToFit } = await import('../fit/convert-fit.ts');
      const fitted = await convertToFit(req.source, req.fit.target, {
        output: req.output,
        force: req.force,
        onProgress: ctx.onProgress,
        signal: cancelSignal(ctx),
        edits: req.fit.edits,
      });
      return packConversionReport(fitted.report) as JobResults[K];
    }
    case 'tensor-stats':
      return tensorStats(req.file, req.path, req.bins) as JobResults[K];
    case 'compare-ranks':
      return compareRanks(req.files) as JobResults[K];
    case 'verify':
      return (await (await import('../verify/run-verify.ts')).runVerify(req.options, ctx)) as JobResults[K];
    case 'reshard':
      return (await (await import('../reshard/run-reshard.ts')).reshard(req.request, ctx)) as JobResults[K];
    case 'preview-conversion':
      return previews.preview(req.file, req.rules, req.output) as JobResults[K];
    case 'plan-batch': {
      const { items, ignored, units } = planBatch({ input: req.folder, outDir: req.outDir, rules: req.rules, force: false });
      checkPlannedItems(items, units, req.folder);
      const plan = {
        input: req.folder,
        outDir: req.outDir,
        items,
        ignored,
        totalBytes: items.filter((i) => i.status === 'pending').reduce((a, i) => a + i.bytes, 0),
      };
      return plan as JobResults[K];
    }
    case 'list-directory':
      return listDirectory(req.dir) as JobResults[K];
    case 'find-dropped-file':
      return findDroppedFile(req.file, req.folders) as JobResults[K];
    case 'fit':
      return (await import('../fit/convert-fit.ts')).fitCheckpoint(req.file, req.target, req.renames, req.edits ?? []) as JobResults[K];
    case 'diff-histograms':
      return (await import('./diff-histograms.ts')).diffHistograms(req.a, req.b, req.key, req.exactKeys, req.bins) as JobResults[K];
    case 'diff':
      return (await (
        await import('../diff/diff.ts')
      ).diffCheckpoints(req.a, req.b, { exactKeys: req.exactKeys, cancelled: () => ctx.cancelled() })) as JobResults[K];
  }
  throw new Error(`unknown job kind ${(req as JobRequest).kind}`);
}
