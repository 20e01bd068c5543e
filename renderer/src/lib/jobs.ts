// Follows one job's pushed events. The listener is attached before the job starts, and events
// that arrive before its id is known are held and replayed, so a fast job's progress and result
// are never lost.
import type { ApiEvent, CheckpointApi, JobId } from '../../../shared/api.ts';

type JobEvent = Exclude<ApiEvent, { type: 'devices' }>;

export interface FollowedJob {
  job: JobId;
  stop(): void;
}

export async function followJob(api: CheckpointApi, start: () => Promise<JobId>, onEvent: (e: JobEvent) => void): Promise<FollowedJob> {
  let id: JobId | null = null;
  let stopped = false;
  const early: JobEvent[] = [];
  const off = api.onEvent((e) => {
    if (stopped || e.type === 'devices') return;
    if (id === null) early.push(e);
    else if (e.job === id) onEvent(e);
  });
  const stop = (): void => {
    stopped = true;
    off();
  };
  try {
    id = await start();
  } catch (e) {
    stop();
    throw e;
  }
  for (const e of early.splice(0)) if (!stopped && e.job === id) onEvent(e);
  return { job: id, stop };
}
