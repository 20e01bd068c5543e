/**
 * The one API the UI talks to. It is implemented twice: by the Electron preload (over IPC) and by
 * the web-mode client (over HTTP + WebSocket); the Node side implements it once, in
 * main/service/service.ts, and both transports call that. The renderer imports only this file and
 * the plain types it names. Every method takes and returns plain, structured-cloneable data.
 */
import type { ConversionPlan, ConversionReport, Progress } from './convert.ts';
import type { DevicePlan, DeviceReading } from './devices.ts';
import type { ErrorInfo } from './errors.ts';
import type { InspectReport, TensorStats } from './inspect.ts';
import type { DiffHistograms, DiffReport } from './diff.ts';
import type { FitReport, FitTargetInput, FitEdit } from './fit.ts';
import type { ConversionRules } from './presets.ts';
import type { ReshardProgress, ReshardReport, ReshardRequest } from './reshard.ts';
import type { VerifyOptions, VerifyReport } from './verify.ts';

export type JobId = string;

export interface DirEntry {
  name: string;
  path: string;
  kind: 'file' | 'dir';
  bytes: number;
  /** set for files whose content says they are a checkpoint (sniffed, not parsed) */
  checkpoint?: boolean;
}

/** The largest dropped file web mode copies into its session folder when it cannot find it. */
export const MAX_UPLOAD_BYTES = 32 << 20;

/** Where a dropped file may be (CheckpointApi.findDroppedFile). */
export interface FoundFiles {
  /** every file with the name, size and modified time, at most 10 */
  matches: string[];
  /** entries looked at, and whether the bound stopped the search before it was done */
  searched: number;
  stoppedEarly: boolean;
}

export interface DirListing {
  dir: string;
  parent: string | null;
  entries: DirEntry[];
}

export interface Workspace {
  /** the bundled sample workspace (real checkpoints of one small CNN), opened on first launch */
  sampleDir: string;
  /** the file the app opens first, inside sampleDir */
  sampleFile: string;
  recent: string[];
  home: string;
  /** 'electron' or 'web' */
  shell: 'electron' | 'web';
  /** native dialogs are available (Electron); in web mode the UI browses with listDirectory */
  nativeDialogs: boolean;
  version: string;
}

export interface BatchPlanItem {
  id: number;
  sources: string[];
  family: boolean;
  outputs: string[];
  bytes: number;
  status: 'pending' | 'running' | 'done' | 'skipped' | 'failed' | 'cancelled';
  reason?: string;
  /** the dry run's one line on what converting it changes (keys renamed, devices retagged) */
  change?: string;
  /** the dry run could not read it (status 'failed', `reason` says why) */
  unreadable?: boolean;
  verified?: boolean;
  seconds?: number;
}

export interface BatchPlan {
  input: string;
  outDir: string;
  items: BatchPlanItem[];
  ignored: number;
  totalBytes: number;
}

export interface BatchSummary {
  items: BatchPlanItem[];
  done: number;
  skipped: number;
  failed: number;
  cancelled: number;
  bytes: number;
  seconds: number;
  /** temporary files of killed runs removed because they were stale (untouched for an hour) */
  staleRemoved?: number;
  /** a problem that did not fail any file, e.g. the batch journal could not be written */
  warning?: string;
}

/**
 * The jobs a `start…` method starts, by kind: what each ends with (the `result` of its `job-done`)
 * and what its progress reports. The kinds, the results and the `job-done` events are derived
 * from this table; a new job kind is a new line here.
 */
export interface StartedJobs {
  convert: { result: ConversionReport; progress: Progress };
  batch: { result: BatchSummary; progress: Progress };
  verify: { result: VerifyReport; progress: Progress };
  reshard: { result: ReshardReport; progress: ReshardProgress };
}

/** The kinds of job a `start…` method starts. */
export type StartedJobKind = keyof StartedJobs;

/** What each kind of started job ends with (the `result` of its `job-done`). */
export type StartedJobResults = { [K in StartedJobKind]: StartedJobs[K]['result'] };

/** One `job-done` event per kind of the table. */
export type JobDoneEvent = { [K in StartedJobKind]: { type: 'job-done'; job: JobId; kind: K; result: StartedJobs[K]['result'] } }[StartedJobKind];

/**
 * Where a started job stands, for a client that may have missed its events (a dropped event
 * socket): `running` with its latest progress, `done` with the result its `job-done` carried,
 * `error` with the error its `job-error` carried; `unknown` for an id this service never issued
 * or no longer remembers (it keeps the last 64 finished jobs; a restarted server keeps none).
 */
export interface JobStatus {
  state: 'running' | 'done' | 'error' | 'unknown';
  kind?: StartedJobKind;
  /** the latest progress (a batch's overall bytes); absent before the first */
  progress?: Progress;
  /** set when done: StartedJobResults[kind] */
  result?: unknown;
  error?: ErrorInfo;
}

/** Events pushed from the Node side while jobs run. */
export type ApiEvent =
  | { type: 'job-progress'; job: JobId; progress: StartedJobs[StartedJobKind]['progress'] }
  | JobDoneEvent
  | { type: 'job-error'; job: JobId; error: ErrorInfo }
  | { type: 'batch-item'; job: JobId; item: BatchPlanItem }
  | { type: 'batch-progress'; job: JobId; id: number; done: number; total: number; overallDone: number; overallTotal: number }
  | { type: 'devices'; reading: DeviceReading };

/** Results are plain data; failures reject with an `ApiError` whose `info` says what and why. */
export interface CheckpointApi {
  getWorkspace(): Promise<Workspace>;
  listDirectory(dir: string): Promise<DirListing>;
  /**
   * A file dropped on a web page, whose path the browser does not give: the files under `folders`
   * (a few levels deep, a bounded number of entries) with its name, size and modified time.
   */
  findDroppedFile(name: string, bytes: number, modifiedMs: number, folders: string[]): Promise<FoundFiles>;
  /**
   * A dropped file found nowhere, at most MAX_UPLOAD_BYTES, copied into this session's folder
   * (removed when the server stops); its path there.
   */
  uploadDroppedFile(name: string, base64: string): Promise<string>;
  /** a native open dialog (Electron only); null when cancelled or unavailable */
  chooseFile(kind: 'file' | 'folder' | 'save', suggested?: string): Promise<string | null>;
  addRecent(file: string): Promise<void>;

  inspect(file: string): Promise<InspectReport>;
  tensorStats(file: string, path: (string | number)[], bins: number): Promise<TensorStats>;

  previewConversion(file: string, rules: ConversionRules, output: string | null): Promise<ConversionPlan>;
  startConversion(file: string, rules: ConversionRules, output: string | null, force: boolean): Promise<JobId>;
  planBatch(folder: string, outDir: string, rules: ConversionRules): Promise<BatchPlan>;
  startBatch(folder: string, outDir: string, rules: ConversionRules, force: boolean, jobs: number): Promise<JobId>;
  cancelJob(job: JobId): Promise<void>;
  /** where a started job stands: for catching up after its events were missed */
  jobStatus(job: JobId): Promise<JobStatus>;

  /** a verification by test-set inference; progress in samples, then `job-done` (kind 'verify') with the report */
  startVerify(options: VerifyOptions): Promise<JobId>;
  /** the report as one self-contained HTML page (what `ckpt verify --report x.html` writes) */
  verifyReportHtml(report: VerifyReport): Promise<string>;

  /** a re-shard's plan and both layouts, nothing written (a dry run, whatever `request.dryRun` says) */
  planReshard(request: ReshardRequest): Promise<ReshardReport>;
  /** a re-shard; progress with its phase, then `job-done` (kind 'reshard') with the report */
  startReshard(request: ReshardRequest): Promise<JobId>;

  /** will this checkpoint load into that model? the target is a file (checkpoint, ONNX, error text, shape lines) or pasted text */
  fitCheckpoint(file: string, target: FitTargetInput, renames: { pattern: string; replacement: string }[], edits?: FitEdit[]): Promise<FitReport>;
  /** the fit with the user's row edits, written as a conversion (convert --fit): verified, and refused unless it loads with strict=True */
  startFitConversion(file: string, target: FitTargetInput, edits: FitEdit[], output: string, force: boolean): Promise<JobId>;
  /** what changed between two checkpoints, tensor by tensor (in a worker) */
  diffCheckpoints(a: string, b: string, exactKeys: boolean): Promise<DiffReport>;
  /** one key of a diff (as the report names it): both tensors' histograms over one range */
  diffHistograms(a: string, b: string, key: string, exactKeys: boolean, bins: number): Promise<DiffHistograms>;

  readDevices(): Promise<DeviceReading>;
  devicePlan(deviceCounts: Record<string, number>, ddpWorldSize?: number): Promise<DevicePlan>;
  /** live device readings every 2 s while subscribed (the Devices view) */
  watchDevices(on: boolean): Promise<void>;

  /** subscribe to pushed events; returns the unsubscribe function */
  onEvent(listener: (e: ApiEvent) => void): () => void;
}

/** Method names of the contract, for transports that route by name (IPC channels, HTTP paths). */
export const API_METHODS = [
  'getWorkspace',
  'listDirectory',
  'findDroppedFile',
  'uploadDroppedFile',
  'chooseFile',
  'addRecent',
  'inspect',
  'tensorStats',
  'previewConversion',
  'startConversion',
  'planBatch',
  'startBatch',
  'cancelJob',
  'jobStatus',
  'startVerify',
  'verifyReportHtml',
  'planReshard',
  'startReshard',
  'readDevices',
  'devicePlan',
  'watchDevices',
  'fitCheckpoint',
  'startFitConversion',
  'diffCheckpoints',
  'diffHistograms',
] as const satisfies readonly Exclude<keyof CheckpointApi, 'onEvent'>[];

export type ApiMethod = (typeof API_METHODS)[number];

/** IPC channel for a method (`ckpt:inspect`) and for pushed events. */
export const ipcChannel = (m: ApiMethod): string => `ckpt:${m}`;
export const EVENT_CHANNEL = 'ckpt:event';

export class ApiError extends Error {
  constructor(readonly info: ErrorInfo) {
    super(info.message);
    this.name = 'ApiError';
  }
}
