// The Verify view's files, device and its running or finished verification. Kept outside the
// view so a verification keeps being followed while other views are shown.
import type { ApiEvent, JobId } from '../../../shared/api.ts';
import type { Progress } from '../../../shared/convert.ts';
import type { DeviceReading } from '../../../shared/devices.ts';
import type { ErrorInfo } from '../../../shared/errors.ts';
import type { VerifyOptions, VerifyReport } from '../../../shared/verify.ts';
import { getApi, toApiError } from '../api/index.ts';
import { dirName, joinPath } from '../lib/format.ts';
import { followJob, type FollowedJob } from '../lib/jobs.ts';

export type VerifyRun =
  | { phase: 'idle' }
  | { phase: 'running'; job: JobId | null; progress: Progress | null; started: number }
  | { phase: 'done'; report: VerifyReport }
  | { phase: 'failed'; error: ErrorInfo };

const isAbsolute = (p: string): boolean => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\');

class VerifyState {
  /** the reference: usually the source of a conversion (VerifyOptions.against) */
  source = $state('');
  /** the checkpoint verified (VerifyOptions.checkpoint); empty: the source alone, against the graph's own weights */
  converted = $state('');
  model = $state('');
  data = $state('');
  device = $state('cpu');
  /** only the first N samples; empty for all */
  limit = $state('');
  run = $state.raw<VerifyRun>({ phase: 'idle' });
  /** the Devices reading, read once, for the device choice */
  reading = $state.raw<DeviceReading | null>(null);
  private followed: FollowedJob | null = null;

  /** The options to run, or the problems that stop them. */
  get checked(): { options: VerifyOptions | null; problems: string[] } {
    const problems: string[] = [];
    const source = this.source.trim();
    const converted = this.converted.trim();
    const model = this.model.trim();
    const data = this.data.trim();
    if (!source && !converted) problems.push('Choose the checkpoint to verify.');
    if (!model) problems.push('Choose the ONNX graph of the model (torch.onnx.export).');
    if (!data) problems.push('Choose a test set: a .npz (x, y), MNIST idx files, CIFAR batches or an image folder.');
    for (const [what, p] of [['The source checkpoint', source], ['The converted checkpoint', converted], ['The graph', model], ['The test set', data]] as const) {
      if (p && !isAbsolute(p)) problems.push(`${what} needs an absolute path.`);
    }
    const limitText = this.limit.trim();
    const limit = limitText ? Number(limitText) : null;
    if (limit !== null && !(Number.isInteger(limit) && limit >= 1)) problems.push('The sample limit must be a whole number, 1 or more.');
    if (problems.length) return { options: null, problems };
    const checkpoint = converted || source;
    return {
      options: {
        model, data, checkpoint, against: converted && source ? source : null, device: this.device,
        ...(limit !== null ? { limit } : {}),
      },
      problems,
    };
  }

  /** what the defaults last filled in: a field still holding it follows the open checkpoint */
  private auto = { source: '', converted: '', model: '', data: '' };
  private defaultsSeq = 0;

  /**
   * Fills the fields from the open checkpoint, leaving alone what the user chose: it is the
   * source, and a single `.onnx` and a single `.npz` in its folder (or the folder above, for rank
   * files in `ddp/`) are the graph and the test set, as in the sample workspace.
   */
  async defaultsFrom(file: string | null): Promise<void> {
    if (!file) return;
    const seq = ++this.defaultsSeq;
    const follows = (k: keyof VerifyState['auto']): boolean => !this[k].trim() || this[k] === this.auto[k];
    if (follows('source') && this.source !== file) {
      this.source = this.auto.source = file;
      if (this.converted && this.converted === this.auto.converted) this.converted = this.auto.converted = '';
    }
    const dir = dirName(file);
    let model: string | null = null;
    let data: string | null = null;
    for (const folder of [dir, dirName(dir)]) {
      if (!folder || (model && data)) continue;
      const names = await this.filesIn(folder);
      const only = (re: RegExp): string | null => {
        const hits = names.filter((n) => re.test(n));
        return hits.length === 1 ? joinPath(folder, hits[0]!) : null;
      };
      model ??= only(/\.onnx$/i);
      data ??= only(/\.npz$/i);
    }
    if (seq !== this.defaultsSeq) return;
    if (follows('model')) this.model = this.auto.model = model ?? '';
    if (follows('data')) this.data = this.auto.data = data ?? '';
  }

  /** Fills the converted checkpoint with the last conversion of the source, unless one was chosen. */
  offerConversion(source: string, output: string): void {
    if (this.source.trim() === source && (!this.converted.trim() || this.converted === this.auto.converted)) this.converted = this.auto.converted = output;
  }

  private async filesIn(folder: string): Promise<string[]> {
    try {
      return (await getApi().listDirectory(folder)).entries.filter((e) => e.kind === 'file').map((e) => e.name);
    } catch {
      return [];
    }
  }

  async readDevices(): Promise<void> {
    if (this.reading) return;
    try {
      this.reading = await getApi().readDevices();
    } catch {
      /* the choice stays cpu and auto */
    }
  }

  async start(): Promise<void> {
    const { options } = this.checked;
    if (!options) return;
    const api = getApi();
    this.followed?.stop();
    this.run = { phase: 'running', job: null, progress: null, started: Date.now() };
    const onEvent = (e: Exclude<ApiEvent, { type: 'devices' }>): void => {
      const r = this.run;
      if (e.type === 'job-progress' && r.phase === 'running') this.run = { ...r, progress: e.progress };
      else if (e.type === 'job-done' && e.kind === 'verify') {
        this.run = { phase: 'done', report: e.result };
        this.followed?.stop();
      } else if (e.type === 'job-error') {
        this.run = { phase: 'failed', error: e.error };
        this.followed?.stop();
      }
    };
    try {
      this.followed = await followJob(api, () => api.startVerify(options), onEvent);
      const r = this.run;
      if (r.phase === 'running') this.run = { ...r, job: this.followed.job };
    } catch (e) {
      this.run = { phase: 'failed', error: toApiError(e).info };
    }
  }

  async cancel(): Promise<void> {
    const r = this.run;
    if (r.phase === 'running' && r.job) await getApi().cancelJob(r.job).catch(() => undefined);
  }

  reset(): void {
    this.followed?.stop();
    this.run = { phase: 'idle' };
  }
}

export const verify = new VerifyState();
