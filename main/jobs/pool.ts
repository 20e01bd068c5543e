import * as os from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { Progress } from '../../shared/convert.ts';
import type { JobRequest, JobResults, WorkerMessage } from '../../shared/jobs.ts';
import { CheckpointError } from '../formats/errors.ts';
import { startWorker } from './worker-url.ts';

/**
 * A small pool of worker threads (after Signal Desktop's `ts/sql/main.main.ts`): requests are a
 * discriminated union, each carries a sequence number, results are typed by kind. Cancellation
 * sets a shared flag the job checks between chunks, since a job blocks its worker while it runs.
 * A worker that crashes is replaced and its job fails with a typed error.
 */
export interface RunOptions {
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
}

interface Pending {
  seq: number;
  request: JobRequest;
  opts: RunOptions;
  cancel: Int32Array;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

interface Slot {
  worker: Worker;
  job: Pending | null;
}


export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private seq = 0;
  private closed = false;
  readonly size: number;

  constructor(size = os.availableParallelism?.() ?? os.cpus().length) {
    this.size = Math.max(1, Math.floor(size));
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
  }

  run<K extends JobRequest['kind']>(request: JobRequest & { kind: K }, opts: RunOptions = {}): Promise<JobResults[K]> {
    if (this.closed) return Promise.reject(new CheckpointError('cancelled', 'the job pool is closed'));
    return new Promise<JobResults[K]>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = (): void => this.cancel(job);
      const settle = (): void => signal?.removeEventListener('abort', onAbort);
      const job: Pending = {
        seq: ++this.seq, request, opts, cancel: new Int32Array(new SharedArrayBuffer(4)),
        resolve: (v) => { settle(); resolve(v as JobResults[K]); },
        reject: (e) => { settle(); reject(e); },
      };
      if (signal) {
        if (signal.aborted) return reject(new CheckpointError('cancelled', 'cancelled before it started'));
        signal.addEventListener('abort', onAbort, { once: true });
      }
      this.queue.push(job);
      this.pump();
    });
  }

  private cancel(job: Pending): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.reject(new CheckpointError('cancelled', 'cancelled before it started'));
    } else Atomics.store(job.cancel, 0, 1);
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.job || !this.queue.length) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.postMessage({ seq: job.seq, request: job.request, cancel: job.cancel });
    }
  }

  private spawn(): Slot {
    const worker = startWorker('worker', new URL('./worker.ts', import.meta.url), import.meta.url);
    const slot: Slot = { worker, job: null };
    worker.on('message', (m: WorkerMessage) => {
      const job = slot.job;
      if (!job || job.seq !== m.seq) return;
      if (m.type === 'progress') return job.opts.onProgress?.(m.progress);
      slot.job = null;
      if (m.type === 'done') job.resolve(m.result);
      else job.reject(new CheckpointError(m.error.kind, m.error.message, m.error.file));
      this.pump();
    });
    let started = false;
    worker.once('online', () => (started = true));
    const crashed = (why: string): void => {
      const job = slot.job;
      slot.job = null;
      if (job) job.reject(new CheckpointError('internal', `the worker running this job stopped (${why}); the job was not finished`));
      if (this.closed) return;
      if (!started) {
        // A worker that cannot even start (a missing or broken script) would fail again: stop.
        this.closed = true;
        for (const j of this.queue.splice(0)) j.reject(new CheckpointError('internal', `worker threads cannot start (${why}); reinstall or rebuild (npm run build)`));
        return;
      }
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots[i] = this.spawn();
      this.pump();
    };
    worker.on('error', (e) => crashed(e.message));
    worker.on('exit', (code) => {
      if (!this.closed) crashed(`exit code ${code}`);
    });
    return slot;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new CheckpointError('cancelled', 'the job pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
