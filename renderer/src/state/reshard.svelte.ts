// The Re-shard view's inputs, target, plan and running or finished re-shard. Kept outside the
// view so a re-shard keeps being followed while other views are shown.
import type { ApiEvent, JobId } from '../../../shared/api.ts';
import type { ErrorInfo } from '../../../shared/errors.ts';
import type { Preset } from '../../../shared/presets.ts';
import type { ReshardFormat, ReshardProgress, ReshardReport, ReshardRequest, ReshardTarget } from '../../../shared/reshard.ts';
import { getApi, toApiError } from '../api/index.ts';
import { baseName, dirName, isAbsolutePath, joinPath } from '../lib/format.ts';
import { followJob, type FollowedJob } from '../lib/jobs.ts';

export type TargetKind = ReshardTarget['kind'];
export type ReshardPresetChoice = 'none' | 'cpu' | 'gpu' | 'dp';
export type ReshardPhase = 'idle' | 'planning' | 'planned' | 'running' | 'done' | 'failed';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `5GB` (as Hugging Face counts: 5·10⁹), `2GiB`, `500MB`, `1000000` → bytes; null when it is none of these. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}

class ReshardState {
  /** files, or one folder (rank files, a DCP folder, a shard set) */
  inputs = $state<string[]>(['']);
  target = $state<TargetKind>('single');
  /** ranks (rank files) or data files (DCP) */
  count = $state(2);
  shardSize = $state('5GB');
  format = $state<ReshardFormat>('torch');
  preset = $state<ReshardPresetChoice>('none');
  gpuIndex = $state(0);
  output = $state('');
  force = $state(false);

  phase = $state<ReshardPhase>('idle');
  /** the dry run's report: both layouts and the plan */
  plan = $state.raw<ReshardReport | null>(null);
  /** what the plan was made for, to tell when it no longer fits the settings */
  planKey = $state('');
  progress = $state.raw<ReshardProgress | null>(null);
  result = $state.raw<ReshardReport | null>(null);
  error = $state.raw<ErrorInfo | null>(null);
  job: JobId | null = null;
  private followed: FollowedJob | null = null;
  /** the input the open checkpoint filled in: while it is still the only input, it follows */
  private autoInput = '';

  /** Shards are safetensors unless asked otherwise, as `ckpt reshard --to shards` writes them. */
  targetChanged(): void {
    if (this.target === 'shards') this.format = 'safetensors';
  }

  followOpenFile(file: string): void {
    const only = this.inputs.length === 1 ? this.inputs[0]!.trim() : null;
    if (only === '' || (only !== null && only === this.autoInput)) this.inputs = [(this.autoInput = file)];
  }

  /** Where the output goes when the field is left empty: beside the first input. */
  get suggestedOutput(): string {
    const first = this.inputs.map((i) => i.trim()).find(Boolean);
    if (!first) return '';
    const name = baseName(first);
    const stem = name.replace(/\.(pt|pth|bin|ckpt|safetensors|tar|json)$/i, '').replace(/\.(pth|index)$/i, '') || name;
    const ext = this.format === 'safetensors' ? '.safetensors' : '.pt';
    switch (this.target) {
      case 'single':
        return joinPath(dirName(first), `${stem}-merged${ext}`);
      case 'ranks':
        return joinPath(dirName(first), `${stem}-ranks.pt`);
      case 'dcp':
        return joinPath(dirName(first), `${stem}-dcp${this.count}`);
      case 'shards':
        return joinPath(dirName(first), `${stem}-shards`);
    }
  }

  /** The request for these settings, or the problems that stop it. */
  request(dryRun: boolean, takeRank: number | null = null): { request: ReshardRequest | null; problems: string[] } {
    const problems: string[] = [];
    const inputs = this.inputs.map((i) => i.trim()).filter(Boolean);
    if (!inputs.length) problems.push('Choose what to re-shard: a file, a folder of rank files, a DCP folder or a shard index.');
    for (const i of inputs) if (!isAbsolutePath(i)) problems.push(`The input ${i} needs an absolute path.`);
    let target: ReshardTarget;
    const count = Number(this.count);
    const countOk = Number.isInteger(count) && count >= 1 && count <= 4096;
    switch (this.target) {
      case 'single':
        target = { kind: 'single' };
        break;
      case 'ranks':
        target = { kind: 'ranks', count };
        break;
      case 'dcp':
        target = { kind: 'dcp', ranks: count };
        break;
      case 'shards': {
        const size = parseSize(this.shardSize);
        if (size === null) problems.push(`The shard size '${this.shardSize}' is not a size: try 5GB, 500MB or 2GiB.`);
        target = { kind: 'shards', maxShardBytes: size ?? 1 };
        break;
      }
    }
    if ((this.target === 'ranks' || this.target === 'dcp') && !countOk) problems.push('The number of ranks must be a whole number from 1 to 4096.');
    const output = this.output.trim() || this.suggestedOutput;
    if (output && !isAbsolutePath(output)) problems.push('The output needs an absolute path.');
    let preset: Preset | null = null;
    if (this.target === 'single' && this.format === 'torch') {
      if (this.preset === 'cpu' || this.preset === 'dp') preset = { name: this.preset };
      else if (this.preset === 'gpu') {
        if (!(Number.isInteger(this.gpuIndex) && this.gpuIndex >= 0)) problems.push('The GPU index must be a whole number, 0 or more.');
        preset = { name: 'gpu', index: Math.max(0, Math.floor(this.gpuIndex || 0)) };
      }
    }
    const format: ReshardFormat = this.target === 'ranks' || this.target === 'dcp' ? 'torch' : this.format;
    if (problems.length || !output) return { request: null, problems };
    return { request: { inputs, target, format, output, force: this.force, preset, takeRank, dryRun }, problems };
  }

  /** The settings a plan depends on, as one string. */
  get key(): string {
    const { request } = this.request(true);
    return request ? JSON.stringify(request) : '';
  }

  async makePlan(): Promise<void> {
    const { request } = this.request(true);
    if (!request) return;
    const key = this.key;
    this.phase = 'planning';
    this.error = null;
    this.result = null;
    this.progress = null;
    try {
      this.plan = await getApi().planReshard(request);
      this.planKey = key;
      this.phase = 'planned';
    } catch (e) {
      this.plan = null;
      this.error = toApiError(e).info;
      this.phase = 'failed';
    }
  }

  /** Runs the re-shard; `takeRank` merges ranks that differ by writing that rank's values. */
  async start(takeRank: number | null = null): Promise<void> {
    const { request } = this.request(false, takeRank);
    if (!request) return;
    const api = getApi();
    this.followed?.stop();
    this.phase = 'running';
    this.error = null;
    this.result = null;
    this.progress = null;
    const onEvent = (e: Exclude<ApiEvent, { type: 'devices' }>): void => {
      if (e.type === 'job-progress' && this.phase === 'running') this.progress = 'phase' in e.progress ? e.progress : { ...e.progress, phase: 'write' };
      else if (e.type === 'job-done' && e.kind === 'reshard') {
        this.result = e.result;
        this.plan = e.result;
        this.phase = 'done';
        this.stop();
      } else if (e.type === 'job-error') {
        this.error = e.error;
        this.phase = 'failed';
        this.stop();
      }
    };
    try {
      this.followed = await followJob(api, () => api.startReshard(request), onEvent);
      this.job = this.followed.job;
    } catch (e) {
      this.error = toApiError(e).info;
      this.phase = 'failed';
    }
  }

  async cancel(): Promise<void> {
    if (this.phase === 'running' && this.job)
      await getApi()
        .cancelJob(this.job)
        .catch(() => undefined);
  }

  private stop(): void {
    this.followed?.stop();
    this.followed = null;
  }
}

export const reshard = new ReshardState();
