// The run of one job that a view starts and follows (a conversion, a verification): its phase,
// progress, result or error, kept outside the view so switching views never loses it.
import type { ApiEvent, JobId, StartedJobKind, StartedJobResults } from '../../../shared/api.ts';
import type { Progress } from '../../../shared/convert.ts';
import type { ErrorInfo } from '../../../shared/errors.ts';
import { getApi, toApiError } from '../api/index.ts';
import { followJob, type FollowedJob } from '../lib/jobs.ts';

export type RunState<R> =
  | { phase: 'idle' }
  | { phase: 'running'; job: JobId | null; progress: Progress | null; started: number }
  | { phase: 'done'; report: R }
  | { phase: 'failed'; error: ErrorInfo };

export class JobRun<K extends StartedJobKind> {
  run = $state.raw<RunState<StartedJobResults[K]>>({ phase: 'idle' });
  private followed: FollowedJob | null = null;

  constructor(private readonly kind: K) {}

  /** Starts a job with `begin` and follows its events until it is done or fails. */
  protected async follow(begin: () => Promise<JobId>): Promise<void> {
    this.followed?.stop();
    this.run = { phase: 'running', job: null, progress: null, started: Date.now() };
    const onEvent = (e: Exclude<ApiEvent, { type: 'devices' }>): void => {
      const r = this.run;
      if (e.type === 'job-progress' && r.phase === 'running') this.run = { ...r, progress: e.progress as Progress };
      else if (e.type === 'job-done' && e.kind === this.kind) {
        this.run = { phase: 'done', report: e.result as StartedJobResults[K] };
        this.followed?.stop();
        this.finished(e.result as StartedJobResults[K]);
      } else if (e.type === 'job-error') {
        this.run = { phase: 'failed', error: e.error };
        this.followed?.stop();
      }
    };
    try {
      this.followed = await followJob(getApi(), begin, onEvent);
      const r = this.run;
      if (r.phase === 'running') this.run = { ...r, job: this.followed.job };
    } catch (e) {
      this.run = { phase: 'failed', error: toApiError(e).info };
    }
  }

  /** Called once when the job's result arrives, after `run` holds it. */
  protected finished(_result: StartedJobResults[K]): void {}

  async cancel(): Promise<void> {
    const r = this.run;
    if (r.phase === 'running' && r.job)
      await getApi()
        .cancelJob(r.job)
        .catch(() => undefined);
  }

  reset(): void {
    this.followed?.stop();
    this.run = { phase: 'idle' };
  }
}
