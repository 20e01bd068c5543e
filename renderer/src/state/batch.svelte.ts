// The Batch view's folders, preset, dry-run plan and running queue. Kept outside the view so a
// batch keeps being followed while other views are shown.
import type { ApiEvent, BatchPlan, BatchPlanItem, BatchSummary, JobId } from '../../../shared/api.ts';
import type { ErrorInfo } from '../../../shared/errors.ts';
import { getApi, toApiError } from '../api/index.ts';
import { followJob, type FollowedJob } from '../lib/jobs.ts';
import { defaultSettings, rulesOf, type RuleSettings } from './convert.svelte.ts';

export type BatchPhase = 'idle' | 'planning' | 'planned' | 'running' | 'cancelling' | 'finished' | 'failed';

class BatchState {
  input = $state('');
  outDir = $state('');
  settings = $state<RuleSettings>(defaultSettings());
  jobs = $state(2);
  force = $state(false);

  phase = $state<BatchPhase>('idle');
  plan = $state.raw<BatchPlan | null>(null);
  items = $state.raw<BatchPlanItem[]>([]);
  /** per item id: bytes done / total of the file being converted */
  itemProgress = $state.raw<Record<number, { done: number; total: number }>>({});
  overall = $state.raw<{ done: number; total: number }>({ done: 0, total: 0 });
  startedAt = $state(0);
  /** when the first progress of this run arrived, and how far along it was then */
  rateFrom = $state.raw<{ at: number; done: number } | null>(null);
  now = $state(Date.now());
  summary = $state.raw<BatchSummary | null>(null);
  error = $state.raw<ErrorInfo | null>(null);
  cancelled = $state(false);
  job: JobId | null = null;
  private followed: FollowedJob | null = null;
  private ticker: ReturnType<typeof setInterval> | null = null;

  get rules() {
    return rulesOf(this.settings);
  }

  async dryRun(): Promise<void> {
    const { rules, problems } = this.rules;
    if (problems.length) {
      this.error = { kind: 'usage', message: problems[0]! };
      return;
    }
    this.phase = 'planning';
    this.error = null;
    this.summary = null;
    try {
      const plan = await getApi().planBatch(this.input.trim(), this.outDir.trim(), rules);
      this.plan = plan;
      this.items = plan.items;
      this.itemProgress = {};
      this.overall = { done: 0, total: plan.items.filter((i) => i.status === 'pending').reduce((a, i) => a + i.bytes, 0) };
      this.phase = 'planned';
    } catch (e) {
      this.error = toApiError(e).info;
      this.phase = 'failed';
    }
  }

  /** Starts the batch; run again after a cancel it resumes (finished files come back as skipped). */
  async start(): Promise<void> {
    const api = getApi();
    const { rules, problems } = this.rules;
    if (problems.length) {
      this.error = { kind: 'usage', message: problems[0]! };
      return;
    }
    await this.dryRun();
    if (this.phase !== 'planned') return;
    this.followed?.stop();
    this.phase = 'running';
    this.cancelled = false;
    this.startedAt = Date.now();
    this.rateFrom = null;
    this.tick(true);
    const onEvent = (e: Exclude<ApiEvent, { type: 'devices' }>): void => {
      if (e.type === 'batch-item') {
        this.items = this.items.some((i) => i.id === e.item.id) ? this.items.map((i) => (i.id === e.item.id ? e.item : i)) : [...this.items, e.item];
        if (e.item.status !== 'running') {
          const { [e.item.id]: _gone, ...rest } = this.itemProgress;
          this.itemProgress = e.item.status === 'done' ? { ...rest, [e.item.id]: { done: 1, total: 1 } } : rest;
        }
      } else if (e.type === 'batch-progress') {
        this.itemProgress = { ...this.itemProgress, [e.id]: { done: e.done, total: e.total } };
        this.overall = { done: e.overallDone, total: e.overallTotal };
        this.rateFrom ??= { at: Date.now(), done: e.overallDone };
        this.items = this.items.map((i) => (i.id === e.id && i.status === 'pending' ? { ...i, status: 'running' } : i));
      } else if (e.type === 'job-done' && e.kind === 'batch') {
        this.summary = e.result;
        this.items = e.result.items;
        this.cancelled = e.result.cancelled > 0;
        this.finish('finished');
      } else if (e.type === 'job-error') {
        this.error = e.error;
        this.cancelled = e.error.kind === 'cancelled';
        this.finish(this.cancelled ? 'finished' : 'failed');
      }
    };
    try {
      this.followed = await followJob(api, () => api.startBatch(this.input.trim(), this.outDir.trim(), rules, this.force, this.jobs), onEvent);
      this.job = this.followed.job;
    } catch (e) {
      this.error = toApiError(e).info;
      this.finish('failed');
    }
  }

  async cancel(): Promise<void> {
    if (!this.job || this.phase !== 'running') return;
    this.phase = 'cancelling';
    try {
      await getApi().cancelJob(this.job);
    } catch (e) {
      this.error = toApiError(e).info;
    }
  }

  private finish(phase: BatchPhase): void {
    this.phase = phase;
    this.followed?.stop();
    this.followed = null;
    this.tick(false);
    this.now = Date.now();
  }

  private tick(on: boolean): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = on ? setInterval(() => (this.now = Date.now()), 500) : null;
  }

  /** Bytes per second since the first progress of this run, and the seconds left at that pace. */
  get pace(): { rate: number; eta: number } {
    const from = this.rateFrom;
    if (!from) return { rate: 0, eta: NaN };
    const seconds = (this.now - from.at) / 1000;
    const rate = seconds > 0.5 ? (this.overall.done - from.done) / seconds : 0;
    return { rate, eta: rate > 0 ? (this.overall.total - this.overall.done) / rate : NaN };
  }

  /** The report to export: the summary when the batch finished, else the queue as it stands. */
  report(): unknown {
    return {
      input: this.input,
      outDir: this.outDir,
      rules: this.rules.rules,
      exportedAt: new Date().toISOString(),
      ...(this.summary ? { summary: this.summary } : { items: this.items, overall: this.overall }),
    };
  }
}

export const batch = new BatchState();
