// The app's job worker thread: every kind of `JobRequest` (run-job.ts), answered by the loop in
// serve-jobs.ts. A folder conversion starts the smaller convert-worker.ts instead.
import { runJob } from './run-job.ts';
import { serveJobs } from './serve-jobs.ts';

// every module above is evaluated: the pool may now change V8's flags (cli/v8-tuning.ts)
serveJobs(runJob);
