// The loop every job worker thread runs (worker.ts, convert-worker.ts): jobs sent by the pool
// run, and the thread posts progress, the result or a typed error. A thrown error never kills the
// thread. A job that waits on the disk says so ('waiting'), and the pool may then send a second
// job, which runs while the first one's fsync and read-back are in flight.
//
// Every message wakes the main thread (on a busy 2-core machine it also takes the core from the
// worker for a moment); a batch of 2 MiB files sent about 8 per file, now 3. So progress is
// throttled per thread (all its jobs together, ~10 Hz), a job that never showed progress sends no
// final 100% (its result follows at once), 'started' is sent only where the pool listens for it
// (a job with a time limit, or one run with `onStart`), and a temporary file gone rides on the
// next message.
import { getHeapStatistics } from 'node:v8';
import { parentPort } from 'node:worker_threads';
import type { JobContext, JobMessage, JobRequest, WorkerMessage } from './protocol.ts';
import { bytesWaitingOnDisk, reportTempFilesTo } from '../io/atomic-file.ts';
import { asCheckpointError } from '../errors.ts';
import { throttle } from '../../shared/throttle.ts';
import { transferListOf } from '../convert/packed-report.ts';

/**
 * Below this much live heap, and this many bytes of its outputs written but not yet published, a
 * job waiting on the disk says it is light, and the pool may give this thread more than one more
 * job meanwhile (pool.ts `hasRoom`): the jobs it holds are small files, whose fsyncs then overlap
 * instead of stalling the thread. A thread holding a big checkpoint's model, or big outputs not
 * yet published, keeps to one job running and one waiting.
 */
const LIGHT_HEAP_BYTES = 128 << 20;
const LIGHT_WAITING_BYTES = 64 << 20;

function light(): boolean {
  return getHeapStatistics().used_heap_size < LIGHT_HEAP_BYTES && bytesWaitingOnDisk() < LIGHT_WAITING_BYTES;
}

/**
 * Answers the pool's jobs with `run`; call it last in a worker's entry module, once every module
 * it imports is evaluated: it tells the pool the thread's code is loaded (the pool may then change
 * V8's flags: cli/v8-tuning.ts).
 */
export function serveJobs(run: (request: JobRequest, ctx: JobContext) => Promise<unknown>): void {
  /** temporary files removed or published since this thread's last message */
  let gone: string[] = [];

  /** Posts `m`, carrying the temporary files gone since the last message; `transfer` is moved, not copied. */
  const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []): void => {
    if (gone.length) {
      m.gone = gone;
      gone = [];
    }
    parentPort!.postMessage(m, transfer);
  };

  // The main thread removes these if the process is told to exit at once (a second Ctrl-C): a new
  // one is said at once; one gone rides on the next message (its job's result comes right after),
  // and until then an exit would only try to remove a file that is not there.
  reportTempFilesTo((file, alive) => (alive ? post({ type: 'temp', file, alive }) : gone.push(file)));

  /** this thread's progress messages, for all its jobs together */
  const due = throttle();

  parentPort!.on('message', async (msg: JobMessage) => {
    const { seq, request, cancel } = msg;
    if (msg.announce) post({ seq, type: 'started' });
    let shown = false;
    try {
      const result = await run(request, {
        cancelled: () => Atomics.load(cancel, 0) !== 0,
        onWaiting: () => post({ seq, type: 'waiting', light: light() }),
        onProgress: (progress) => {
          if (!due(shown && progress.done >= progress.total)) return;
          shown = true;
          post({ seq, type: 'progress', progress });
        },
      });
      // a conversion's packed per-tensor lists are moved, not copied
      post({ seq, type: 'done', result }, transferListOf(result));
    } catch (e) {
      post({ seq, type: 'error', error: asCheckpointError(e).toInfo() });
    }
  });

  post({ type: 'loaded' });
}
