import type { BatchPlan, DirListing, FoundFiles, StartedJobResults } from '../../shared/api.ts';
import type { DroppedFile } from '../inputs/find-file.ts';
import type { ConversionPlan, Progress } from '../../shared/convert.ts';
import type { ErrorInfo } from '../../shared/errors.ts';
import type { InspectReport, TensorStats } from '../../shared/inspect.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import type { VerifyOptions } from '../../shared/verify.ts';
import type { ReshardRequest } from '../../shared/reshard.ts';
import type { DiffHistograms, DiffReport } from '../../shared/diff.ts';
import type { FitEdit, FitReport, FitTargetInput } from '../../shared/fit.ts';
import type { PackedConversionReport } from '../convert/packed-report.ts';

/**
 * Work that runs in a worker thread, by kind: the request's fields and the result. The request
 * union (`JobRequest`) and the results (`JobResults`) are derived from this one table; the kinds
 * the API starts take their results from the API's table (`StartedJobResults`), so the two agree;
 * except convert's, whose per-tensor lists cross the thread boundary packed (`PackedConversionReport`)
 * and which the service expands into the API's `ConversionReport` (`unpackConversionReport`).
 */
export interface WorkerJobs {
  inspect: { request: { file: string }; result: InspectReport };
  convert: {
    request: {
      source: string;
      output: string | null;
      rules: ConversionRules;
      force: boolean;
      syncFolder?: boolean;
      keepVerifiedExisting?: boolean;
      /** convert --fit with the app's row edits (the rules are then the fit's own) */
      fit?: { target: FitTargetInput; edits: FitEdit[] };
    };
    result: PackedConversionReport;
  };
  'tensor-stats': { request: { file: string; path: (string | number)[]; bins: number }; result: TensorStats };
  'compare-ranks': { request: { files: string[] }; result: { identical: boolean; differing: string[]; tensors: number } };
  verify: { request: { options: VerifyOptions }; result: StartedJobResults['verify'] };
  reshard: { request: { request: ReshardRequest }; result: StartedJobResults['reshard'] };
  /** the Convert view's preview: opens (and for an FSDP rank, compares) files, so not on the main thread */
  'preview-conversion': { request: { file: string; rules: ConversionRules; output: string | null }; result: ConversionPlan };
  /** walks a folder tree and sniffs every file */
  'plan-batch': { request: { folder: string; outDir: string; rules: ConversionRules }; result: BatchPlan };
  /** sniffs up to SNIFF_LIMIT files of a folder */
  'list-directory': { request: { dir: string }; result: DirListing };
  'find-dropped-file': { request: { file: DroppedFile; folders: string[] }; result: FoundFiles };
  /** will a checkpoint load into a model: opens both (issue 14) */
  fit: { request: { file: string; target: FitTargetInput; renames: { pattern: string; replacement: string }[]; edits?: FitEdit[] }; result: FitReport };
  /** two checkpoints compared tensor by tensor, streamed */
  diff: { request: { a: string; b: string; exactKeys: boolean }; result: DiffReport };
  /** the Diff view's histograms of one key on both sides */
  'diff-histograms': { request: { a: string; b: string; key: string; exactKeys: boolean; bins: number }; result: DiffHistograms };
}

export type JobKind = keyof WorkerJobs;

/** One discriminated union of every request, one result type per kind. */
export type JobRequest = { [K in JobKind]: { kind: K } & WorkerJobs[K]['request'] }[JobKind];

export type JobResults = { [K in JobKind]: WorkerJobs[K]['result'] };

/** What a job running in a worker may call (run-job.ts, convert-job.ts). */
export interface JobContext {
  onProgress(p: Progress): void;
  /** true once the job was cancelled; long jobs check it between chunks */
  cancelled(): boolean;
  /** the job waits on the disk now; its thread is free for another job meanwhile */
  onWaiting?(): void;
}

/** A job as the pool sends it to a worker. */
export interface JobMessage {
  seq: number;
  request: JobRequest;
  /** set to 1 by the pool to cancel the job */
  cancel: Int32Array;
  /** the pool wants to know when the job begins (a time limit, or `onStart`): the worker says 'started' */
  announce?: boolean;
}

/**
 * Messages from a worker to the pool. Any of them may carry `gone`: temporary files the worker
 * removed or published since its previous message.
 */
export type WorkerMessage = WorkerEvent & { gone?: string[] };

type WorkerEvent =
  /** the worker has begun a job that asked to be announced (its code is loaded): a time limit counts from here */
  | { seq: number; type: 'started' }
  | { seq: number; type: 'progress'; progress: Progress }
  | { seq: number; type: 'done'; result: unknown }
  | { seq: number; type: 'error'; error: ErrorInfo }
  /**
   * the job's bytes are written and it now waits on the disk (fsync, read-back): the worker can
   * start another. `light`: the worker's heap is small, so it may take more than one more (pool.ts)
   */
  | { seq: number; type: 'waiting'; light?: boolean }
  /** a temporary file the worker created (alive) or removed or published (not), for Ctrl-C cleanup in the main thread */
  | { seq?: undefined; type: 'temp'; file: string; alive: boolean }
  /** the worker's code is loaded (its modules evaluated): sent once, before any answer */
  | { seq?: undefined; type: 'loaded' };
