import type { ConversionReport, Progress } from '../../shared/convert.ts';
import type { ErrorInfo } from '../../shared/errors.ts';
import type { InspectReport, TensorStats } from '../../shared/inspect.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import type { VerifyOptions, VerifyReport } from '../../shared/verify.ts';
import type { ReshardReport, ReshardRequest } from '../../shared/reshard.ts';

/** Work that runs in a worker thread. One discriminated union, one result type per kind. */
export type JobRequest =
  | { kind: 'inspect'; file: string }
  | { kind: 'convert'; source: string; output: string | null; rules: ConversionRules; force: boolean; syncFolder?: boolean }
  | { kind: 'tensor-stats'; file: string; path: (string | number)[]; bins: number }
  | { kind: 'compare-ranks'; files: string[] }
  | { kind: 'verify'; options: VerifyOptions }
  | { kind: 'reshard'; request: ReshardRequest };

export interface JobResults {
  inspect: InspectReport;
  convert: ConversionReport;
  'tensor-stats': TensorStats;
  'compare-ranks': { identical: boolean; differing: string[]; tensors: number };
  verify: VerifyReport;
  reshard: ReshardReport;
}

export type JobResult<K extends JobRequest['kind']> = JobResults[K];

/** Messages from a worker to the pool. */
export type WorkerMessage =
  | { seq: number; type: 'progress'; progress: Progress }
  | { seq: number; type: 'done'; result: unknown }
  | { seq: number; type: 'error'; error: ErrorInfo }
  /** the job's bytes are written and it now waits on the disk (fsync, read-back): the worker can start another */
  | { seq: number; type: 'waiting' }
  /** a temporary file the worker created (alive) or removed or published (not), for Ctrl-C cleanup in the main thread */
  | { seq?: undefined; type: 'temp'; file: string; alive: boolean };
