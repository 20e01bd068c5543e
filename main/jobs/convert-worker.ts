// The worker thread of a folder conversion (`ckpt convert DIR`): only the jobs a batch sends
// (jobs/batch.ts), so it loads only what converting a file needs. The app's worker (worker.ts)
// bundles every job kind, and its bundle is about twice this one's size: each of a batch's threads
// parses and evaluates its bundle before its first file.
import type { JobContext, JobRequest } from './protocol.ts';
import { convertJob, type ConvertJobKind } from './convert-job.ts';
import { compareRanks } from '../inputs/family.ts';
import { serveJobs } from './serve-jobs.ts';

const KINDS: readonly string[] = ['convert', 'compare-ranks'] satisfies ConvertJobKind[];

function runConvertJob(req: JobRequest, ctx: JobContext): Promise<unknown> {
  if (req.kind === 'convert' && !req.fit) return convertJob(req, ctx);
  if (req.kind === 'compare-ranks') return Promise.resolve(compareRanks(req.files));
  // the pool that starts this thread sends only these (pool.ts CONVERT_WORKER)
  return Promise.reject(new Error(`the conversion worker runs ${KINDS.join(' and ')} jobs (without fit), not ${req.kind}`));
}

// every module above is evaluated: the pool may now change V8's flags (cli/v8-tuning.ts)
serveJobs(runConvertJob);
