// The Verify view's files, device and its running or finished verification. Kept outside the
// view so a verification keeps being followed while other views are shown.
import type { DeviceReading } from '../../../shared/devices.ts';
import type { VerifyOptions, VerifyReport } from '../../../shared/verify.ts';
import { getApi } from '../api/index.ts';
import { dirName, isAbsolutePath, joinPath } from '../lib/format.ts';
import { type FolderEntry, graphIn, modelSourceIn, testSetIn } from '../lib/verify-files.ts';
import { JobRun, type RunState as JobRunState } from './job-run.svelte.ts';
import { pythonOptions, recall, remember, workspaceOf } from './verify-python.ts';
import { forgetReport, saveReport, savedReport } from './verify-saved.ts';

export type VerifyRun = JobRunState<VerifyReport>;

class VerifyState extends JobRun<'verify'> {
  /** the reference: usually the source of a conversion (VerifyOptions.against) */
  source = $state('');
  /** the checkpoint verified (VerifyOptions.checkpoint); empty: the source alone, against the graph's own weights */
  converted = $state('');
  model = $state('');
  data = $state('');
  device = $state('cpu');
  /** only the first N samples; empty for all */
  limit = $state('');
  /** where the architecture comes from: the ONNX graph, or the model class in the user's Python */
  architecture = $state<'onnx' | 'python'>('onnx');
  /** the interpreter; empty: the first python on PATH that imports torch */
  python = $state('');
  modelClass = $state('');
  /** the constructor's keyword arguments, as JSON */
  modelArgs = $state('');
  /** the folder of the open checkpoint, under which the Python choice is remembered */
  private workspace = '';
  private autoModelClass = '';
  /** when the report shown was made, when it was restored from an earlier visit (verify-saved.ts) */
  restoredAt = $state<number | null>(null);
  /** whether the user has typed in a field: until then what is missing is a hint, not an error */
  edited = $state(false);
  /** the workspace of the run in progress, where its report is kept */
  private runWorkspace = '';
  /** the Devices reading, read once, for the device choice */
  reading = $state.raw<DeviceReading | null>(null);

  constructor() {
    super('verify');
  }

  /** The options to run, or the problems that stop them. */
  get checked(): { options: VerifyOptions | null; problems: string[] } {
    const problems: string[] = [];
    const source = this.source.trim();
    const converted = this.converted.trim();
    const model = this.model.trim();
    const data = this.data.trim();
    if (!source && !converted) problems.push('Choose the checkpoint to verify.');
    const py = this.architecture === 'python' ? pythonOptions({ python: this.python, modelClass: this.modelClass, modelArgs: this.modelArgs }, problems) : null;
    if (!model && this.architecture === 'onnx') problems.push('Choose the ONNX graph of the model (torch.onnx.export).');
    if (!data) problems.push('Choose a test set: a .npz (x, y), MNIST idx files, CIFAR batches or an image folder.');
    for (const [what, p] of [
      ['The source checkpoint', source],
      ['The converted checkpoint', converted],
      ['The graph', model],
      ['The test set', data],
    ] as const) {
      if (p && !isAbsolutePath(p)) problems.push(`${what} needs an absolute path.`);
    }
    const limitText = this.limit.trim();
    const limit = limitText ? Number(limitText) : null;
    if (limit !== null && !(Number.isInteger(limit) && limit >= 1)) problems.push('The sample limit must be a whole number, 1 or more.');
    if (problems.length) return { options: null, problems };
    const checkpoint = converted || source;
    return {
      options: {
        model: this.architecture === 'onnx' ? model : '',
        ...(py ?? {}),
        data,
        checkpoint,
        against: converted && source ? source : null,
        device: this.device,
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
   * source, and the graph and the test set found in its folder (or the folder above, for rank
   * files in `ddp/`) by lib/verify-files.ts: a single `.onnx`; a `.npz`, idx, CIFAR or image folder.
   */
  async defaultsFrom(file: string | null): Promise<void> {
    if (!file) return;
    const seq = ++this.defaultsSeq;
    const follows = (k: keyof VerifyState['auto']): boolean => !this[k].trim() || this[k] === this.auto[k];
    // an open ONNX file is the graph (Checkpoint view → "Verify a checkpoint with this graph"), not the checkpoint
    const isGraph = /\.onnx$/i.test(file);
    if (isGraph && follows('model')) this.model = this.auto.model = file;
    if (isGraph && this.source === this.auto.source && this.source.endsWith('.onnx')) this.source = this.auto.source = '';
    if (!isGraph && follows('source') && this.source !== file) {
      this.source = this.auto.source = file;
      if (this.converted && this.converted === this.auto.converted) this.converted = this.auto.converted = '';
    }
    const dir = dirName(file);
    let model: string | null = null;
    let data: string | null = null;
    let py: string | null = null;
    const workspace = workspaceOf(dir, dirName(dir));
    for (const folder of workspace === dir ? [dir] : [dir, workspace]) {
      if (!folder || (model && data)) continue;
      const entries = await this.entriesIn(folder);
      const at = (name: string | null): string | null => (name === null ? null : name ? joinPath(folder, name) : folder);
      model ??= at(graphIn(entries));
      py ??= at(modelSourceIn(entries));
      data ??= at(testSetIn(entries));
    }
    if (seq !== this.defaultsSeq) return;
    this.pythonDefaults(workspace, py);
    this.restoreReport(workspace);
    if (!isGraph && follows('model')) this.model = this.auto.model = model ?? '';
    if (follows('data')) this.data = this.auto.data = data ?? '';
  }

  /** What was last run in this workspace with the Python-model source, when the fields are still empty. */
  private pythonDefaults(workspace: string, modelFile: string | null): void {
    this.workspace = workspace;
    const saved = recall(workspace);
    // a single .py beside the checkpoint is the model's file (its one nn.Module class is found by the runner)
    if (!saved && modelFile && (!this.modelClass.trim() || this.modelClass === this.autoModelClass)) this.modelClass = this.autoModelClass = modelFile;
    if (!saved || (this.modelClass.trim() && this.modelClass !== this.autoModelClass)) return;
    this.python = saved.python;
    this.modelClass = saved.modelClass;
    this.modelArgs = saved.modelArgs;
    this.architecture = 'python';
  }

  /** Shows the last report of this workspace when nothing was run since the window opened. */
  private restoreReport(workspace: string): void {
    if (this.run.phase !== 'idle') return;
    const saved = savedReport(workspace);
    if (!saved) return;
    this.run = { phase: 'done', report: saved.report };
    this.restoredAt = saved.savedAt;
    this.runWorkspace = workspace;
  }

  protected override finished(report: VerifyReport): void {
    if (this.runWorkspace) saveReport(this.runWorkspace, report);
  }

  override reset(): void {
    super.reset();
    if (this.runWorkspace) forgetReport(this.runWorkspace);
    this.restoredAt = null;
  }

  /** Fills the converted checkpoint with the last conversion of the source, unless one was chosen. */
  offerConversion(source: string, output: string): void {
    if (this.source.trim() === source && (!this.converted.trim() || this.converted === this.auto.converted)) this.converted = this.auto.converted = output;
  }

  private async entriesIn(folder: string): Promise<FolderEntry[]> {
    try {
      return (await getApi().listDirectory(folder)).entries;
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
    if (options.modelClass && this.workspace)
      remember(this.workspace, { python: this.python.trim(), modelClass: this.modelClass.trim(), modelArgs: this.modelArgs.trim() });
    this.restoredAt = null;
    this.runWorkspace = this.workspace;
    await this.follow(() => api.startVerify(options));
  }
}

export const verify = new VerifyState();
