// CheckpointApi over HTTP + WebSocket, for the browser (`ckpt serve`). Calls are
// `POST /api/<method>` with the arguments as a JSON array; the answer is the result as JSON, or
// `{ error: { kind, message, file? } }`. Pushed events arrive on the WebSocket `/api/events`,
// which reconnects by itself. Paths are in shared/web-transport.ts. The session token needs no
// handling here: the server turns the first page load's `?token=` into an HttpOnly cookie, which
// the browser sends with every call and with the socket's upgrade request.
//
// A socket that drops loses the events sent while it was down. The jobs this client started and
// has not seen end are asked after (`jobStatus`) as soon as it is back, and what they missed is
// delivered as the events they would have had: the latest progress, or the job's end.
import type { ApiEvent, ApiMethod, CheckpointApi, JobId, JobStatus, StartedJobKind } from '../../../shared/api.ts';
import { ApiError } from '../../../shared/api.ts';
import { apiPath, EVENTS_PATH } from '../../../shared/web-transport.ts';
import { isErrorInfo, toApiError } from './errors.ts';

/**
 * 'connecting' until the first connection, 'reconnecting' after one was lost, 'expired' when the
 * server refuses this page's token (restarted with a new one, or the cookie is gone).
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'expired';

/** What the user reads when the server answers 401: what happened and how to get back in. */
export const SESSION_EXPIRED_HELP =
  'The server was restarted with a new token, or its cookie is gone. ' +
  'Open the address `ckpt serve` printed (…/?token=…) again in this tab; start the server with --token T or CKPT_TOKEN to keep one address across restarts.';
export const SESSION_EXPIRED = `The session with this server has expired. ${SESSION_EXPIRED_HELP}`;

export class WebClient implements CheckpointApi {
  private readonly listeners = new Set<(e: ApiEvent) => void>();
  private readonly connectionListeners = new Set<(s: ConnectionState) => void>();
  private socket: WebSocket | null = null;
  private retryMs = 500;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private state: ConnectionState = 'connecting';
  private watching = false;
  private everOpened = false;
  /** jobs started here whose end has not arrived, with their kind */
  private readonly active = new Map<JobId, StartedJobKind>();
  /** ends that arrived before the start call answered (a fast job); kept briefly */
  private readonly endedEarly = new Set<JobId>();

  private async call<T>(method: ApiMethod, args: unknown[]): Promise<T> {
    const headers = { 'content-type': 'application/json' };
    let res: Response;
    try {
      res = await fetch(apiPath(method), { method: 'POST', headers, body: JSON.stringify(args), credentials: 'same-origin' });
    } catch (e) {
      throw new ApiError({
        kind: 'io',
        message: `The Checkpoint Workstation server did not answer (${(e as Error).message}). Is \`ckpt serve\` still running?`,
      });
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = undefined;
    }
    if (res.status === 401) {
      this.setState('expired');
      throw new ApiError({ kind: 'usage', message: SESSION_EXPIRED });
    }
    // Failures are 4xx/5xx with `{ error }`; a 200 may carry an `error` field of its own (jobStatus).
    if (!res.ok && body && typeof body === 'object' && 'error' in body && isErrorInfo((body as { error: unknown }).error)) {
      throw toApiError((body as { error: unknown }).error);
    }
    if (res.status === 403) {
      throw new ApiError({ kind: 'usage', message: 'The server refused this page: open the address `ckpt serve` printed, with its token.' });
    }
    if (!res.ok || body === undefined) {
      throw new ApiError({
        kind: 'internal',
        message: `${method}: the server answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`,
      });
    }
    return body as T;
  }

  getWorkspace: CheckpointApi['getWorkspace'] = () => this.call('getWorkspace', []);
  listDirectory: CheckpointApi['listDirectory'] = (dir) => this.call('listDirectory', [dir]);
  uploadDroppedFile: CheckpointApi['uploadDroppedFile'] = (name, base64) => this.call('uploadDroppedFile', [name, base64]);
  findDroppedFile: CheckpointApi['findDroppedFile'] = (name, bytes, modifiedMs, folders) => this.call('findDroppedFile', [name, bytes, modifiedMs, folders]);
  chooseFile: CheckpointApi['chooseFile'] = (kind, suggested) => this.call('chooseFile', suggested === undefined ? [kind] : [kind, suggested]);
  addRecent: CheckpointApi['addRecent'] = (file) => this.call('addRecent', [file]);
  inspect: CheckpointApi['inspect'] = (file) => this.call('inspect', [file]);
  tensorStats: CheckpointApi['tensorStats'] = (file, path, bins) => this.call('tensorStats', [file, path, bins]);
  previewConversion: CheckpointApi['previewConversion'] = (file, rules, output) => this.call('previewConversion', [file, rules, output]);
  startConversion: CheckpointApi['startConversion'] = (file, rules, output, force) => this.start('convert', 'startConversion', [file, rules, output, force]);
  planBatch: CheckpointApi['planBatch'] = (folder, outDir, rules) => this.call('planBatch', [folder, outDir, rules]);
  startBatch: CheckpointApi['startBatch'] = (folder, outDir, rules, force, jobs) => this.start('batch', 'startBatch', [folder, outDir, rules, force, jobs]);
  cancelJob: CheckpointApi['cancelJob'] = (job) => this.call('cancelJob', [job]);
  jobStatus: CheckpointApi['jobStatus'] = (job) => this.call('jobStatus', [job]);
  startVerify: CheckpointApi['startVerify'] = (options) => this.start('verify', 'startVerify', [options]);
  verifyReportHtml: CheckpointApi['verifyReportHtml'] = (report) => this.call('verifyReportHtml', [report]);
  planReshard: CheckpointApi['planReshard'] = (request) => this.call('planReshard', [request]);
  startReshard: CheckpointApi['startReshard'] = (request) => this.start('reshard', 'startReshard', [request]);
  fitCheckpoint: CheckpointApi['fitCheckpoint'] = (file, target, renames, edits) =>
    this.call('fitCheckpoint', edits ? [file, target, renames, edits] : [file, target, renames]);
  startFitConversion: CheckpointApi['startFitConversion'] = (file, target, edits, output, force) =>
    this.call('startFitConversion', [file, target, edits, output, force]);
  diffCheckpoints: CheckpointApi['diffCheckpoints'] = (a, b, exactKeys) => this.call('diffCheckpoints', [a, b, exactKeys]);
  diffHistograms: CheckpointApi['diffHistograms'] = (a, b, key, exactKeys, bins) => this.call('diffHistograms', [a, b, key, exactKeys, bins]);
  readDevices: CheckpointApi['readDevices'] = () => this.call('readDevices', []);
  devicePlan: CheckpointApi['devicePlan'] = (counts, ddpWorldSize) => this.call('devicePlan', ddpWorldSize === undefined ? [counts] : [counts, ddpWorldSize]);
  watchDevices: CheckpointApi['watchDevices'] = async (on) => {
    this.watching = on;
    await this.call('watchDevices', [on]);
  };

  /** Starts a job and remembers it until its end arrives, to catch up on it after a lost socket. */
  private async start(kind: StartedJobKind, method: ApiMethod, args: unknown[]): Promise<JobId> {
    const job = await this.call<JobId>(method, args);
    if (!this.endedEarly.delete(job)) this.active.set(job, kind);
    return job;
  }

  private dispatch(event: ApiEvent): void {
    if (event.type === 'job-done' || event.type === 'job-error') {
      if (!this.active.delete(event.job)) {
        this.endedEarly.add(event.job);
        for (const old of this.endedEarly) {
          if (this.endedEarly.size <= 64) break;
          this.endedEarly.delete(old);
        }
      }
    }
    for (const l of [...this.listeners]) l(event);
  }

  /**
   * After a reconnect: asks where each unfinished job stands and delivers what was missed. The
   * socket is open again first, so nothing that happens after the answer is missed either.
   */
  private async catchUp(): Promise<void> {
    for (const [job, kind] of [...this.active]) {
      let s: JobStatus;
      try {
        s = await this.jobStatus(job);
      } catch {
        continue; // the server is gone again; the next reconnect asks again
      }
      if (this.active.get(job) !== kind) continue; // its end arrived meanwhile
      if (s.state === 'running' && s.kind === kind) {
        if (s.progress) this.dispatch({ type: 'job-progress', job, progress: s.progress });
      } else if (s.state === 'done' && s.kind === kind) {
        this.dispatch({ type: 'job-done', job, kind, result: s.result } as ApiEvent);
      } else if (s.state === 'error' && s.kind === kind) {
        this.dispatch({ type: 'job-error', job, error: s.error ?? { kind: 'internal', message: 'the job failed' } });
      } else {
        // unknown, or an id a restarted server has since given to another job
        this.dispatch({
          type: 'job-error',
          job,
          error: { kind: 'internal', message: 'The server no longer knows this job (was `ckpt serve` restarted?); its outcome is lost. Run it again.' },
        });
      }
    }
  }

  onEvent(listener: (e: ApiEvent) => void): () => void {
    this.listeners.add(listener);
    this.connect();
    return () => this.listeners.delete(listener);
  }

  /** Follows the event connection. */
  onConnection(listener: (s: ConnectionState) => void): () => void {
    this.connectionListeners.add(listener);
    listener(this.state);
    return () => this.connectionListeners.delete(listener);
  }

  private setState(s: ConnectionState): void {
    this.state = s;
    for (const l of this.connectionListeners) l(s);
  }

  /** GET of the event path: 426 when the token is good, 401 when the server no longer takes it. */
  private async probeToken(): Promise<void> {
    try {
      const res = await fetch(EVENTS_PATH, { credentials: 'same-origin' });
      await res.body?.cancel();
      if (res.status === 401) this.setState('expired');
    } catch {
      // the server is down: 'reconnecting' says so
    }
  }

  private connect(): void {
    if (this.socket || this.retryTimer) return;
    const url = new URL(EVENTS_PATH, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    this.socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retryMs = 500;
      this.setState('open');
      // A server restarted under us forgot the live device subscription; ask again.
      if (this.everOpened && this.watching) this.call('watchDevices', [true]).catch(() => undefined);
      // Events sent while the socket was down are lost: catch up on the jobs that were running.
      if (this.everOpened && this.active.size) void this.catchUp();
      this.everOpened = true;
    };
    ws.onmessage = (m) => {
      let event: ApiEvent;
      try {
        event = JSON.parse(String(m.data)) as ApiEvent;
      } catch {
        return;
      }
      this.dispatch(event);
    };
    ws.onclose = () => {
      this.socket = null;
      if (this.state !== 'expired') this.setState(this.everOpened ? 'reconnecting' : 'connecting');
      // A browser hides why a socket was refused: ask the server the same question over HTTP.
      if (!opened) void this.probeToken();
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }
}
