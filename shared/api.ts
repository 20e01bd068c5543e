/**
 * The one API the UI talks to. It is implemented twice: by the Electron preload (over IPC) and by
 * the web-mode client (over HTTP + WebSocket); the Node side implements it once, in
 * main/api/service.ts, and both transports call that. The renderer imports only this file and
 * the plain types it names. Every method takes and returns plain, structured-cloneable data.
 */
import type { ConversionPlan, ConversionReport, Progress } from './convert.ts';
import type { DevicePlan, DeviceReading } from './devices.ts';
import type { ErrorInfo } from './errors.ts';
import type { InspectReport } from './inspect.ts';
import type { TensorStats } from './jobs.ts';
import type { ConversionRules } from './presets.ts';

export type JobId = string;

export interface DirEntry {
  name: string;
  path: string;
  kind: 'file' | 'dir';
  bytes: number;
  /** set for files whose content says they are a checkpoint (sniffed, not parsed) */
  checkpoint?: boolean;
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
}

/** Events pushed from the Node side while jobs run. */
export type ApiEvent =
  | { type: 'job-progress'; job: JobId; progress: Progress }
  | { type: 'job-done'; job: JobId; kind: 'convert'; result: ConversionReport }
  | { type: 'job-done'; job: JobId; kind: 'batch'; result: BatchSummary }
  | { type: 'job-error'; job: JobId; error: ErrorInfo }
  | { type: 'batch-item'; job: JobId; item: BatchPlanItem }
  | { type: 'batch-progress'; job: JobId; id: number; done: number; total: number; overallDone: number; overallTotal: number }
  | { type: 'devices'; reading: DeviceReading };

/** Results are plain data; failures reject with an `ApiError` whose `info` says what and why. */
export interface CheckpointApi {
  getWorkspace(): Promise<Workspace>;
  listDirectory(dir: string): Promise<DirListing>;
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

  readDevices(): Promise<DeviceReading>;
  devicePlan(deviceCounts: Record<string, number>, ddpWorldSize?: number): Promise<DevicePlan>;
  /** live device readings every 2 s while subscribed (the Devices view) */
  watchDevices(on: boolean): Promise<void>;

  /** subscribe to pushed events; returns the unsubscribe function */
  onEvent(listener: (e: ApiEvent) => void): () => void;
}

/** Method names of the contract, for transports that route by name (IPC channels, HTTP paths). */
export const API_METHODS = [
  'getWorkspace', 'listDirectory', 'chooseFile', 'addRecent', 'inspect', 'tensorStats', 'previewConversion', 'startConversion',
  'planBatch', 'startBatch', 'cancelJob', 'readDevices', 'devicePlan', 'watchDevices',
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
