// The worker thread entry: runs jobs sent by the pool and posts progress (throttled to ~10 Hz),
// the result or a typed error. A thrown error never kills the thread. A job that waits on the
// disk says so ('waiting'), and the pool may then send a second job, which runs while the first
// one's fsync and read-back are in flight.
import { parentPort } from 'node:worker_threads';
import type { JobRequest, WorkerMessage } from './protocol.ts';
import { reportTempFilesTo } from '../io/atomic-file.ts';
import { asCheckpointError } from '../errors.ts';
import { runJob } from './run-job.ts';
import { throttle } from '../../shared/throttle.ts';
import { transferListOf } from '../convert/packed-report.ts';

// the main thread removes these if the process is told to exit at once (a second Ctrl-C)
reportTempFilesTo((file, alive) => parentPort!.postMessage({ type: 'temp', file, alive } satisfies WorkerMessage));

parentPort!.on('message', async (msg: { seq: number; request: JobRequest; cancel: Int32Array }) => {
  const { seq, request, cancel } = msg;
  const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []): void => parentPort!.postMessage(m, transfer);
  post({ seq: msg.seq, type: 'started' });
  const due = throttle();
  try {
    const result = await runJob(request, {
      cancelled: () => Atomics.load(cancel, 0) !== 0,
      onWaiting: () => post({ seq, type: 'waiting' }),
      onProgress: (progress) => {
        if (due(progress.done >= progress.total)) post({ seq, type: 'progress', progress });
      },
    });
    // a conversion's packed per-tensor lists are moved, not copied
    post({ seq, type: 'done', result }, transferListOf(result));
  } catch (e) {
    post({ seq, type: 'error', error: asCheckpointError(e).toInfo() });
  }
});
