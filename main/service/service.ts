/**
 * The Node side of the UI's API (shared/api.ts), written once for both transports: the Electron
 * IPC adapter (main/electron/ipc.ts) and web mode (main/server/). The transports check the
 * arguments (call-method.ts); every method fails with an `ApiError` carrying a typed, one-line
 * `ErrorInfo`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiError, type ApiEvent, type BatchPlan, type CheckpointApi, type Workspace } from '../../shared/api.ts';
import type { DeviceReading } from '../../shared/devices.ts';
import type { FitEdit, FitTargetInput } from '../../shared/fit.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import type { ReshardRequest } from '../../shared/reshard.ts';
import type { VerifyOptions, VerifyReport } from '../../shared/verify.ts';
import { VERSION } from '../version.ts';
import { planDevices } from '../devices/device-plan.ts';
import { asCheckpointError, fail } from '../errors.ts';
import { renderReportHtml } from '../verify/report-html.ts';
import { defaultConfigDir, SAMPLE_FILE, sampleWorkspaceDir } from './app-paths.ts';
import { DeviceWatch, type ReadFn } from './device-watch.ts';
import { EventHub } from './event-hub.ts';
import { JobRunner } from './job-runner.ts';
import { RecentFiles } from './recent-files.ts';

export interface ServiceOptions {
  shell: Workspace['shell'];
  /** where recent.json lives; default `defaultConfigDir()` (Electron passes app.getPath('userData')) */
  configDir?: string;
  /** default: the bundled sample workspace */
  sampleDir?: string;
  /** native dialogs (Electron); without it chooseFile answers null */
  chooseFile?(kind: 'file' | 'folder' | 'save', suggested?: string): Promise<string | null>;
  onRecentChanged?(recent: string[]): void;
  /** device reader (default: nvidia-smi) and the live poll interval (default 2 s) */
  readDevices?: ReadFn;
  devicePollMs?: number;
  /** workers for single conversions (default 2 to 4 by CPU count) */
  poolSize?: number;
}

export type ApiService = CheckpointApi & { close(): Promise<void> };

export function createApiService(opts: ServiceOptions): ApiService {
  const sampleDir = opts.sampleDir ?? sampleWorkspaceDir();
  const recent = new RecentFiles(opts.configDir ?? defaultConfigDir());
  const devices = new DeviceWatch((reading: DeviceReading) => hub.emit({ type: 'devices', reading }), opts.readDevices, opts.devicePollMs);
  // When the last listener leaves (a window closed, every browser tab gone), nobody is watching.
  const hub = new EventHub(() => devices.reset());
  const jobs = new JobRunner((e: ApiEvent) => hub.emit(e), opts.poolSize);
  /** this session's folder for dropped files copied in (uploadDroppedFile), made on first use */
  let uploads: string | null = null;

  /** Runs the method (its arguments checked by the transport), turns any failure into an ApiError. */
  const method =
    <A extends unknown[], R>(impl: (...args: A) => R | Promise<R>) =>
    async (...args: A): Promise<Awaited<R>> => {
      try {
        return await impl(...args);
      } catch (e) {
        throw e instanceof ApiError ? e : new ApiError(asCheckpointError(e).toInfo());
      }
    };

  return {
    getWorkspace: method(
      (): Workspace => ({
        sampleDir,
        sampleFile: path.join(sampleDir, SAMPLE_FILE),
        recent: recent.list(),
        home: os.homedir(),
        shell: opts.shell,
        nativeDialogs: !!opts.chooseFile,
        version: VERSION,
      }),
    ),
    listDirectory: method((dir: string) => jobs.run({ kind: 'list-directory', dir })),
    findDroppedFile: method((name: string, bytes: number, modifiedMs: number, folders: string[]) =>
      jobs.run({ kind: 'find-dropped-file', file: { name, bytes, modifiedMs }, folders }),
    ),
    chooseFile: method((kind: 'file' | 'folder' | 'save', suggested?: string) => (opts.chooseFile ? opts.chooseFile(kind, suggested) : null)),
    addRecent: method((file: string) => {
      const list = recent.add(file);
      opts.onRecentChanged?.(list);
    }),

    inspect: method((file: string) => jobs.run({ kind: 'inspect', file })),
    tensorStats: method((file: string, at: (string | number)[], bins: number) => jobs.run({ kind: 'tensor-stats', file, path: at, bins })),

    previewConversion: method((file: string, rules: ConversionRules, output: string | null) => jobs.run({ kind: 'preview-conversion', file, rules, output })),
    startConversion: method((file: string, rules: ConversionRules, output: string | null, force: boolean) => jobs.startConversion(file, rules, output, force)),
    planBatch: method((folder: string, outDir: string, rules: ConversionRules): Promise<BatchPlan> => jobs.run({ kind: 'plan-batch', folder, outDir, rules })),
    startBatch: method((folder: string, outDir: string, rules: ConversionRules, force: boolean, n: number) => jobs.startBatch(folder, outDir, rules, force, n)),
    cancelJob: method((job: string) => jobs.cancel(job)),
    jobStatus: method((job: string) => jobs.status(job)),

    startVerify: method((options: VerifyOptions) => jobs.startVerify(options)),
    verifyReportHtml: method((report: VerifyReport) => {
      try {
        return renderReportHtml(report);
      } catch (e) {
        // the transport checked every field the page shows; anything still wrong is the report's doing
        return fail('usage', `the report cannot be rendered: ${(e as Error).message.split('\n')[0]}`);
      }
    }),

    planReshard: method((request: ReshardRequest) => jobs.run({ kind: 'reshard', request: { ...request, dryRun: true } })),
    startReshard: method((request: ReshardRequest) => jobs.startReshard(request)),

    fitCheckpoint: method((file: string, target: FitTargetInput, renames: { pattern: string; replacement: string }[], edits?: FitEdit[]) =>
      jobs.run({ kind: 'fit', file, target, renames, edits: edits ?? [] }),
    ),
    startFitConversion: method((file: string, target: FitTargetInput, edits: FitEdit[], output: string, force: boolean) =>
      jobs.startFitConversion(file, target, edits, output, force),
    ),
    diffCheckpoints: method((a: string, b: string, exactKeys: boolean) => jobs.run({ kind: 'diff', a, b, exactKeys })),
    diffHistograms: method((a: string, b: string, key: string, exactKeys: boolean, bins: number) =>
      jobs.run({ kind: 'diff-histograms', a, b, key, exactKeys, bins }),
    ),

    uploadDroppedFile: method(async (name: string, base64: string) => {
      // a web page cannot say where a dropped file lives: a small one is copied into this session's folder
      // Each drop gets its own folder, so a second file of the same name (from another folder) never
      // replaces a copy that a view may still have open, and the copy keeps the user's own name.
      uploads ??= await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ckpt-dropped-'));
      const file = path.join(await fs.promises.mkdtemp(path.join(uploads, 'drop-')), name);
      await fs.promises.writeFile(file, Buffer.from(base64, 'base64'), { flag: 'wx' });
      return file;
    }),

    readDevices: method(() => devices.readNow()),
    devicePlan: method(async (counts: Record<string, number>, ddpWorldSize?: number) =>
      planDevices(counts, await devices.recent(), ddpWorldSize === undefined ? {} : { ddpWorldSize }),
    ),
    watchDevices: method((on: boolean) => devices.watch(on)),

    onEvent: (listener) => hub.subscribe(listener),

    async close() {
      await Promise.all([jobs.close(), devices.close()]);
      if (uploads) await fs.promises.rm(uploads, { recursive: true, force: true });
    },
  };
}
