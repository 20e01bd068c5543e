import * as os from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { Progress } from '../../shared/convert.ts';
import type { JobRequest, JobResults, WorkerMessage } from './protocol.ts';
import { trackTempFile } from '../io/atomic-file.ts';
import { CheckpointError } from '../errors.ts';
import { startWorker } from '../io/start-worker.ts';

/**
 * A small pool of worker threads (after Signal Desktop's `ts/sql/main.main.ts`): requests are a
 * discriminated union, each carries a sequence number, results are typed by kind. Cancellation
 * sets a shared flag the job checks between chunks, since a job blocks its worker while it runs.
 * A worker that crashes is replaced and its jobs fail with a typed error.
 *
 * A worker runs one job at a time, except that a job waiting on the disk (its output written, now
 * fsynced and read back) frees its worker for one more: in a batch of small files the thread would
 * otherwise sit idle for every file's fsync. While every waiting job said `light` (the worker's
 * heap and its unpublished outputs small: worker.ts), up to LIGHT_JOBS_PER_WORKER may wait at
 * once: one fsync of a 2 MiB file took 9–22 ms on a busy disk (means over 100 files per run, load
 * 5–8 on 2 cores), longer than writing the next file, and with one waiting job each of two
 * workers sat idle 36–190 ms of a 1.5–2.8 s batch of 200 files; with three, never.
 */
export interface RunOptions {
  onProgress?(p: Progress): void;
  /** called when a worker begins the job (one more message per job: only when asked for) */
  onStart?(): void;
  signal?: AbortSignal;
  /**
   * For jobs with no side effects (inspect, statistics): a cancel or `timeLimit` stops the job by
   * terminating its worker (a new one takes its place), since a parse of a hostile file may never
   * reach a point where it checks the cancel flag.
   */
  stoppable?: { timeLimitMs: number; overTime(): CheckpointError };
}

/** The script a pool's threads run: it answers `{ seq, request, cancel }` with `WorkerMessage`s. */
export interface WorkerScript {
  /** the bundled file's name beside the running bundle, without `.js` */
  name: string;
  /** the source file, run through tsx when the caller runs from source */
  source: URL;
  /** the caller's `import.meta.url` */
  runningFrom: string;
}

/** The app's job worker (worker.ts): every kind of `JobRequest`. */
const JOB_WORKER: WorkerScript = { name: 'worker', source: new URL('./worker.ts', import.meta.url), runningFrom: import.meta.url };
/** The CLI convert's worker, for one file or a folder (convert-worker.ts): `ConvertJobRequest`s only, half the code to load. */
export const CONVERT_WORKER: WorkerScript = { name: 'convert-worker', source: new URL('./convert-worker.ts', import.meta.url), runningFrom: import.meta.url };

interface Pending {
  seq: number;
  request: { kind: string };
  opts: RunOptions;
  cancel: Int32Array;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** starts a stoppable job's time limit, when its worker says it has begun the job */
  startClock?(): void;
}

/** Whether the worker should say when it begins the job: only then does anyone listen. */
function announced(job: Pending): boolean {
  return !!(job.startClock || job.opts.onStart);
}

interface Slot {
  worker: Worker;
  /** jobs sent to this worker and not finished, by sequence number */
  jobs: Map<number, Pending>;
  /** those of them that wait on the disk */
  waiting: Set<number>;
  /** those waiting ones whose worker's heap was not small when they began to wait */
  heavy: Set<number>;
  /** stopped by `stop`: already replaced, so its exit starts no other worker */
  retired?: boolean;
}

/** At most this many jobs per worker: one running, the others waiting on the disk. */
const JOBS_PER_WORKER = 2;
/** The same while every waiting job is light (its worker's heap small: worker.ts). */
export const LIGHT_JOBS_PER_WORKER = 4;

function hasRoom(s: Slot): boolean {
  return s.jobs.size < Math.min(s.heavy.size ? JOBS_PER_WORKER : LIGHT_JOBS_PER_WORKER, 1 + s.waiting.size);
}

/**
 * Generic over the requests its script understands (a union discriminated by `kind`) and the
 * result of each kind; by default the app's job worker with `JobRequest` and `JobResults`.
 */
export class WorkerPool<Request extends { kind: string } = JobRequest, Results = JobResults> {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private seq = 0;
  private closed = false;
  /** settles once each first thread has said its code is loaded, or died */
  private readonly allLoaded: Promise<void>;
  readonly size: number;
  /** the most jobs the pool's threads may hold at once (all light: see `hasRoom`) */
  readonly capacity: number;

  constructor(
    size = os.availableParallelism?.() ?? os.cpus().length,
    private readonly script: WorkerScript = JOB_WORKER,
  ) {
    this.size = Math.max(1, Math.floor(size));
    this.capacity = this.size * LIGHT_JOBS_PER_WORKER;
    const loads: Promise<void>[] = [];
    for (let i = 0; i < this.size; i++) loads.push(new Promise((loaded) => this.slots.push(this.spawn(loaded))));
    this.allLoaded = Promise.all(loads).then(() => undefined);
  }

  /**
   * Settles once each of the pool's first threads has loaded its code (the job worker says so;
   * a script that never says it leaves this pending). A thread that dies first counts as loaded.
   */
  loaded(): Promise<void> {
    return this.allLoaded;
  }

  run<K extends Request['kind'] & keyof Results>(request: Request & { kind: K }, opts: RunOptions = {}): Promise<Results[K]> {
    if (this.closed) return Promise.reject(new CheckpointError('cancelled', 'the job pool is closed'));
    return new Promise<Results[K]>((resolve, reject) => {
      const signal = opts.signal;
      const stoppable = opts.stoppable;
      const onAbort = (): void => (stoppable ? this.stop(job, new CheckpointError('cancelled', 'cancelled: a newer request replaced it')) : this.cancel(job));
      let overTime: ReturnType<typeof setTimeout> | undefined;
      const settle = (): void => {
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(overTime);
      };
      const job: Pending = {
        seq: ++this.seq,
        request,
        opts,
        cancel: new Int32Array(new SharedArrayBuffer(4)),
        resolve: (v) => {
          settle();
          resolve(v as Results[K]);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
        ...(stoppable ? { startClock: () => void (overTime ??= setTimeout(() => this.stop(job, stoppable.overTime()), stoppable.timeLimitMs)) } : {}),
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

  /** Ends a stoppable job now: out of the queue, or its worker terminated (and replaced). */
  private stop(job: Pending, why: CheckpointError): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    const slot = this.slots.find((s) => s.jobs.get(job.seq) === job);
    job.reject(why);
    if (!slot) return;
    slot.jobs.delete(job.seq);
    slot.waiting.delete(job.seq);
    slot.heavy.delete(job.seq);
    // replaced at once, so no job is sent to the thread being stopped; jobs it also held fail as lost
    slot.retired = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
    void slot.worker.terminate();
    this.pump();
  }

  private pump(): void {
    // idle workers first, then those whose jobs wait on the disk
    const order = [...this.slots].sort((a, b) => a.jobs.size - b.jobs.size);
    for (const slot of order) {
      while (this.queue.length && hasRoom(slot)) {
        const job = this.queue.shift()!;
        slot.jobs.set(job.seq, job);
        slot.worker.postMessage({ seq: job.seq, request: job.request, cancel: job.cancel, ...(announced(job) ? { announce: true } : {}) });
      }
    }
  }

  /** A thread for a slot; `loaded` (a first thread's: a replacement's start is not waited for) is called when its code is loaded or it dies. */
  private spawn(loaded: () => void = () => {}): Slot {
    const worker = startWorker(this.script.name, this.script.source, this.script.runningFrom);
    const slot: Slot = { worker, jobs: new Map(), waiting: new Set(), heavy: new Set() };
    worker.on('message', (m: WorkerMessage) => {
      if (m.gone) for (const f of m.gone) trackTempFile(f, false);
      if (m.type === 'temp') return trackTempFile(m.file, m.alive);
      if (m.type === 'loaded') return loaded();
      const job = slot.jobs.get(m.seq);
      if (!job) return;
      if (m.type === 'started') {
        job.opts.onStart?.();
        return job.startClock?.(); // the thread's start and code loading do not count
      }
      if (m.type === 'progress') return job.opts.onProgress?.(m.progress);
      if (m.type === 'waiting') {
        slot.waiting.add(m.seq);
        if (!m.light) slot.heavy.add(m.seq);
        return this.pump();
      }
      slot.jobs.delete(m.seq);
      slot.waiting.delete(m.seq);
      slot.heavy.delete(m.seq);
      if (m.type === 'done') job.resolve(m.result);
      else job.reject(new CheckpointError(m.error.kind, m.error.message, m.error.file, m.error.details));
      this.pump();
    });
    let started = false;
    worker.once('online', () => (started = true));
    const crashed = (why: string): void => {
      loaded();
      const lost = [...slot.jobs.values()];
      slot.jobs.clear();
      slot.waiting.clear();
      slot.heavy.clear();
      for (const job of lost) job.reject(new CheckpointError('internal', `the worker running this job stopped (${why}); the job was not finished`));
      if (this.closed || slot.retired) return;
      if (!started) {
        // A worker that cannot even start (a missing or broken script) would fail again: stop.
        this.closed = true;
        for (const j of this.queue.splice(0))
          j.reject(new CheckpointError('internal', `worker threads cannot start (${why}); reinstall or rebuild (npm run build)`));
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
