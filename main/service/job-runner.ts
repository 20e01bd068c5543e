/**
 * The API's background work. Everything heavy runs in worker threads so the event loop (and with
 * it the UI's transport) never blocks: quick jobs (inspect, tensor stats) in a small pool of
 * their own, so that a long conversion never holds them up; single conversions in another; each
 * batch in a pool of its requested size. Started jobs return an id at once and report through
 * events; a job that fails or whose worker crashes ends in `job-error`, never in a thrown
 * exception.
 */
import * as os from 'node:os';
import type { ApiEvent, BatchPlanItem, JobDoneEvent, JobId, JobStatus, StartedJobKind, StartedJobResults } from '../../shared/api.ts';
import type { Progress } from '../../shared/convert.ts';
import type { JobRequest, JobResults } from '../jobs/protocol.ts';
import type { FitEdit, FitTargetInput } from '../../shared/fit.ts';
import { NO_RULES, type ConversionRules } from '../../shared/presets.ts';
import type { ReshardProgress, ReshardRequest } from '../../shared/reshard.ts';
import type { VerifyOptions } from '../../shared/verify.ts';
import { runBatch, type BatchItem } from '../jobs/batch.ts';
import { asCheckpointError, CheckpointError } from '../errors.ts';
import { WorkerPool } from '../jobs/pool.ts';
import { unpackConversionReport } from '../convert/packed-report.ts';
import { throttle } from '../../shared/throttle.ts';

const snapshot = (item: BatchItem): BatchPlanItem => ({ ...item, sources: [...item.sources], outputs: [...item.outputs] });

/** How long an inspect may run in the app before it is stopped (every file the fuzzer makes takes under 10 s). */
export const INSPECT_TIME_LIMIT_MS = 30_000;

/** Finished jobs whose outcome `status` still answers; older ones are forgotten. */
export const REMEMBERED_JOBS = 64;

/** The `job-done` event of a kind (the table in shared/api.ts pairs each kind with its result). */
function jobDone<K extends StartedJobKind>(job: JobId, kind: K, result: StartedJobResults[K]): JobDoneEvent {
  return { type: 'job-done', job, kind, result } as JobDoneEvent;
}

/** Progress as events: throttled, but the last of each phase and a change of phase always go out. */
function progressEmitter(emit: (e: ApiEvent) => void, job: JobId): (p: Progress | ReshardProgress) => void {
  const due = throttle();
  let phase: string | undefined;
  return (progress) => {
    const p = 'phase' in progress ? progress.phase : undefined;
    if (due(progress.done >= progress.total || p !== phase)) emit({ type: 'job-progress', job, progress });
    phase = p;
  };
}

interface JobRecord {
  kind: StartedJobKind;
  state: 'running' | 'done' | 'error';
  progress?: Progress;
  result?: unknown;
  error?: JobStatus['error'];
}

export class JobRunner {
  private quick: WorkerPool | null = null;
  private conversions: WorkerPool | null = null;
  /** onnxruntime uses every core by itself: one verification at a time, the others wait */
  private verifications: WorkerPool | null = null;
  private readonly running = new Map<JobId, AbortController>();
  private readonly batchPools = new Set<WorkerPool>();
  /** what `status` answers: running jobs, then the last REMEMBERED_JOBS finished ones */
  private readonly records = new Map<JobId, JobRecord>();
  private readonly finished: JobId[] = [];
  private issued = 0;
  private closed = false;

  /** the inspect the user asked for last, while it runs */
  private lastInspect: AbortController | null = null;

  constructor(
    private readonly out: (e: ApiEvent) => void,
    private readonly poolSize = Math.max(2, Math.min(4, os.availableParallelism?.() ?? os.cpus().length)),
    private readonly inspectTimeLimitMs = INSPECT_TIME_LIMIT_MS,
  ) {}

  /** Every job event passes here: recorded for `status`, then sent. */
  private readonly emit = (e: ApiEvent): void => {
    if (e.type !== 'devices') {
      const r = this.records.get(e.job);
      if (r && r.state === 'running') {
        if (e.type === 'job-progress') r.progress = e.progress;
        else if (e.type === 'batch-progress') r.progress = { done: e.overallDone, total: e.overallTotal, unit: 'bytes' };
        else if (e.type === 'job-done' || e.type === 'job-error') {
          r.state = e.type === 'job-done' ? 'done' : 'error';
          if (e.type === 'job-done') r.result = e.result;
          else r.error = e.error;
          this.finished.push(e.job);
          for (const old of this.finished.splice(0, Math.max(0, this.finished.length - REMEMBERED_JOBS))) this.records.delete(old);
        }
      }
    }
    this.out(e);
  };

  /** Where a started job stands (for a client that missed its events). */
  status(id: JobId): JobStatus {
    const r = this.records.get(id);
    if (!r) return { state: 'unknown' };
    return {
      state: r.state,
      kind: r.kind,
      ...(r.progress ? { progress: r.progress } : {}),
      ...(r.state === 'done' ? { result: r.result } : {}),
      ...(r.error ? { error: r.error } : {}),
    };
  }

  /**
   * Runs a quick job and waits for its result. A re-shard here is only ever a plan. An inspect has
   * a time budget, and a newer inspect replaces the one still running (the user opened another
   * file): either way its worker is stopped, so a hostile file cannot hold the quick pool.
   */
  run<
    K extends
      | 'inspect'
      | 'tensor-stats'
      | 'reshard'
      | 'preview-conversion'
      | 'plan-batch'
      | 'list-directory'
      | 'find-dropped-file'
      | 'fit'
      | 'diff'
      | 'diff-histograms',
  >(request: JobRequest & { kind: K }): Promise<JobResults[K]> {
    this.assertOpen();
    this.quick ??= new WorkerPool(2);
    const req = request as JobRequest;
    if (req.kind === 'inspect') {
      this.lastInspect?.abort();
      const replaced = new AbortController();
      this.lastInspect = replaced;
      const seconds = this.inspectTimeLimitMs / 1000;
      const stoppable = {
        timeLimitMs: this.inspectTimeLimitMs,
        overTime: () =>
          new CheckpointError(
            'too-large',
            `${req.file}: inspecting it took longer than ${seconds} s and was stopped; \`ckpt inspect\` in a terminal has no time limit`,
            req.file,
          ),
      };
      return this.quick.run<K>(req as JobRequest & { kind: K }, { signal: replaced.signal, stoppable }).finally(() => {
        if (this.lastInspect === replaced) this.lastInspect = null;
      });
    }
    return this.quick.run<K>((req.kind === 'reshard' ? { ...req, request: { ...req.request, dryRun: true } } : req) as JobRequest & { kind: K });
  }

  startConversion(source: string, rules: ConversionRules, output: string | null, force: boolean): JobId {
    return this.start({ kind: 'convert', source, output, rules, force }, () => (this.conversions ??= new WorkerPool(this.poolSize)), source);
  }

  /** convert --fit with the app's row edits: a conversion job like any other */
  startFitConversion(source: string, target: FitTargetInput, edits: FitEdit[], output: string, force: boolean): JobId {
    return this.start(
      { kind: 'convert', source, output, rules: NO_RULES, force, fit: { target, edits } },
      () => (this.conversions ??= new WorkerPool(this.poolSize)),
      source,
    );
  }

  startVerify(options: VerifyOptions): JobId {
    return this.start({ kind: 'verify', options }, () => (this.verifications ??= new WorkerPool(1)), options.checkpoint);
  }

  startReshard(request: ReshardRequest): JobId {
    return this.start({ kind: 'reshard', request }, () => (this.conversions ??= new WorkerPool(this.poolSize)), request.inputs[0]);
  }

  /**
   * Starts a worker job that is also an API job kind: an id at once, progress as throttled events,
   * the end as `job-done` with the worker's result or `job-error`. `file` names the input in errors.
   */
  private start<K extends JobRequest['kind'] & StartedJobKind>(request: JobRequest & { kind: K }, pool: () => WorkerPool, file: string | undefined): JobId {
    this.assertOpen();
    const { id, signal } = this.begin(request.kind);
    const onProgress = progressEmitter(this.emit, id);
    this.finish(
      id,
      pool()
        .run<K>(request, { signal, onProgress })
        .then((result) => {
          // a conversion's per-tensor lists come packed from the worker: the API states them in full
          const stated = request.kind === 'convert' ? unpackConversionReport(result as JobResults['convert']) : result;
          this.emit(jobDone(id, request.kind, stated as StartedJobResults[K]));
        }),
      file,
    );
    return id;
  }

  startBatch(input: string, outDir: string, rules: ConversionRules, force: boolean, jobs: number): JobId {
    this.assertOpen();
    const { id, signal } = this.begin('batch');
    const pool = new WorkerPool(jobs);
    this.batchPools.add(pool);
    const due = throttle();
    const items = new Map<number, BatchItem>();
    const work = runBatch(
      {
        input,
        outDir,
        rules,
        force,
        signal,
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
      },
      pool,
    );
    this.finish(
      id,
      work
        .then((summary) => {
          this.emit(jobDone(id, 'batch', { ...summary, items: summary.items.map(snapshot) }));
        })
        .finally(() => {
          this.batchPools.delete(pool);
          return pool.close();
        }),
      input,
    );
    return id;
  }

  /** Cancels a running job; a finished one is left alone. */
  cancel(id: JobId): void {
    const n = Number(id.slice('job-'.length));
    if (!(n >= 1 && n <= this.issued)) throw new CheckpointError('usage', `no job '${id}' was started`);
    this.running.get(id)?.abort();
  }

  private begin(kind: StartedJobKind): { id: JobId; signal: AbortSignal } {
    const id = `job-${++this.issued}`;
    const controller = new AbortController();
    this.running.set(id, controller);
    this.records.set(id, { kind, state: 'running' });
    return { id, signal: controller.signal };
  }

  private finish(id: JobId, work: Promise<void>, file: string | undefined): void {
    work
      .catch((e: unknown) => {
        this.emit({ type: 'job-error', job: id, error: asCheckpointError(e, file).toInfo() });
      })
      .finally(() => this.running.delete(id));
  }

  private assertOpen(): void {
    if (this.closed) throw new CheckpointError('cancelled', 'the app is shutting down; no new jobs are started');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.running.values()) c.abort();
    const pools = [this.quick, this.conversions, this.verifications, ...this.batchPools].filter((p): p is WorkerPool => p !== null);
    await Promise.all(pools.map((p) => p.close()));
  }
}
