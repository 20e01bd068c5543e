/**
 * The API's background work. Everything heavy runs in worker threads so the event loop (and with
 * it the UI's transport) never blocks: quick jobs (inspect, tensor stats) in a small pool of
 * their own, so that a long conversion never holds them up; single conversions in another; each
 * batch in a pool of its requested size. Started jobs return an id at once and report through
 * events; a job that fails or whose worker crashes ends in `job-error`, never in a thrown
 * exception.
 */
import * as os from 'node:os';
import type { ApiEvent, BatchPlanItem, JobId } from '../../shared/api.ts';
import type { Progress } from '../../shared/convert.ts';
import type { JobRequest, JobResults } from '../../shared/jobs.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { runBatch, type BatchItem } from '../convert/batch.ts';
import { asCheckpointError, CheckpointError } from '../formats/errors.ts';
import { WorkerPool } from '../jobs/pool.ts';

/** Progress events per job are sent at most this often (the last one always). */
export const PROGRESS_INTERVAL_MS = 100;

const snapshot = (item: BatchItem): BatchPlanItem => ({ ...item, sources: [...item.sources], outputs: [...item.outputs] });

/** Lets through one call per interval, and always the final one. */
function throttle(intervalMs: number): (final: boolean) => boolean {
  let last = -Infinity;
  return (final) => {
    const now = performance.now();
    if (!final && now - last < intervalMs) return false;
    last = now;
    return true;
  };
}

export class JobRunner {
  private quick: WorkerPool | null = null;
  private conversions: WorkerPool | null = null;
  private readonly running = new Map<JobId, AbortController>();
  private readonly batchPools = new Set<WorkerPool>();
  private issued = 0;
  private closed = false;

  constructor(private readonly emit: (e: ApiEvent) => void, private readonly poolSize = Math.max(2, Math.min(4, os.availableParallelism?.() ?? os.cpus().length))) {}

  /** Runs a quick job and waits for its result. */
  run<K extends 'inspect' | 'tensor-stats'>(request: JobRequest & { kind: K }): Promise<JobResults[K]> {
    this.assertOpen();
    this.quick ??= new WorkerPool(2);
    return this.quick.run<K>(request);
  }

  startConversion(source: string, rules: ConversionRules, output: string | null, force: boolean): JobId {
    this.assertOpen();
    const { id, signal } = this.begin();
    this.conversions ??= new WorkerPool(this.poolSize);
    const due = throttle(PROGRESS_INTERVAL_MS);
    const onProgress = (progress: Progress): void => {
      if (due(progress.done >= progress.total)) this.emit({ type: 'job-progress', job: id, progress });
    };
    this.finish(id, this.conversions.run({ kind: 'convert', source, output, rules, force }, { signal, onProgress }).then((result) => {
      this.emit({ type: 'job-done', job: id, kind: 'convert', result });
    }), source);
    return id;
  }

  startBatch(input: string, outDir: string, rules: ConversionRules, force: boolean, jobs: number): JobId {
    this.assertOpen();
    const { id, signal } = this.begin();
    const pool = new WorkerPool(jobs);
    this.batchPools.add(pool);
    const due = throttle(PROGRESS_INTERVAL_MS);
    const items = new Map<number, BatchItem>();
    const work = runBatch({
      input, outDir, rules, force, signal,
      onEvent: (e) => {
        if (e.type === 'plan') {
          for (const item of e.items) {
            items.set(item.id, item);
            this.emit({ type: 'batch-item', job: id, item: snapshot(item) });
          }
        } else if (e.type === 'start' && items.has(e.id)) this.emit({ type: 'batch-item', job: id, item: snapshot(items.get(e.id)!) });
        else if (e.type === 'item') this.emit({ type: 'batch-item', job: id, item: snapshot(e.item) });
        else if (e.type === 'progress' && due(e.overallDone >= e.overallTotal)) {
          this.emit({ type: 'batch-progress', job: id, id: e.id, done: e.done, total: e.total, overallDone: e.overallDone, overallTotal: e.overallTotal });
        }
      },
    }, pool);
    this.finish(id, work.then((summary) => {
      this.emit({ type: 'job-done', job: id, kind: 'batch', result: { ...summary, items: summary.items.map(snapshot) } });
    }).finally(() => {
      this.batchPools.delete(pool);
      return pool.close();
    }), input);
    return id;
  }

  /** Cancels a running job; a finished one is left alone. */
  cancel(id: JobId): void {
    const n = Number(id.slice('job-'.length));
    if (!(n >= 1 && n <= this.issued)) throw new CheckpointError('usage', `no job '${id}' was started`);
    this.running.get(id)?.abort();
  }

  private begin(): { id: JobId; signal: AbortSignal } {
    const id = `job-${++this.issued}`;
    const controller = new AbortController();
    this.running.set(id, controller);
    return { id, signal: controller.signal };
  }

  private finish(id: JobId, work: Promise<void>, file: string): void {
    work.catch((e: unknown) => {
      this.emit({ type: 'job-error', job: id, error: asCheckpointError(e, file).toInfo() });
    }).finally(() => this.running.delete(id));
  }

  private assertOpen(): void {
    if (this.closed) throw new CheckpointError('cancelled', 'the app is shutting down; no new jobs are started');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.running.values()) c.abort();
    const pools = [this.quick, this.conversions, ...this.batchPools].filter((p): p is WorkerPool => p !== null);
    await Promise.all(pools.map((p) => p.close()));
  }
}
