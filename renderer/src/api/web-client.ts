// CheckpointApi over HTTP + WebSocket, for the browser (`ckpt serve`). Calls are
// `POST /api/<method>` with the arguments as a JSON array; the answer is the result as JSON, or
// `{ error: { kind, message, file? } }`. Pushed events arrive on the WebSocket `/api/events`,
// which reconnects by itself. Paths are in shared/web-transport.ts. The session token needs no
// handling here: the server turns the first page load's `?token=` into an HttpOnly cookie, which
// the browser sends with every call and with the socket's upgrade request.
import type { ApiEvent, ApiMethod, CheckpointApi } from '../../../shared/api.ts';
import { ApiError } from '../../../shared/api.ts';
import { apiPath, EVENTS_PATH } from '../../../shared/web-transport.ts';
import { isErrorInfo, toApiError } from './errors.ts';

/** 'connecting' until the first connection, 'reconnecting' after one was lost. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting';

export class WebClient implements CheckpointApi {
  private readonly listeners = new Set<(e: ApiEvent) => void>();
  private readonly connectionListeners = new Set<(s: ConnectionState) => void>();
  private socket: WebSocket | null = null;
  private retryMs = 500;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private state: ConnectionState = 'connecting';
  private watching = false;
  private everOpened = false;

  private async call<T>(method: ApiMethod, args: unknown[]): Promise<T> {
    const headers = { 'content-type': 'application/json' };
    let res: Response;
    try {
      res = await fetch(apiPath(method), { method: 'POST', headers, body: JSON.stringify(args), credentials: 'same-origin' });
    } catch (e) {
      throw new ApiError({ kind: 'io', message: `The Checkpoint Workstation server did not answer (${(e as Error).message}). Is \`ckpt serve\` still running?` });
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = undefined;
    }
    if (body && typeof body === 'object' && 'error' in body && isErrorInfo((body as { error: unknown }).error)) {
      throw toApiError((body as { error: unknown }).error);
    }
    if (res.status === 401 || res.status === 403) {
      throw new ApiError({ kind: 'usage', message: 'The server refused this page: open the address `ckpt serve` printed, with its token.' });
    }
    if (!res.ok || body === undefined) {
      throw new ApiError({ kind: 'internal', message: `${method}: the server answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}` });
    }
    return body as T;
  }

  getWorkspace: CheckpointApi['getWorkspace'] = () => this.call('getWorkspace', []);
  listDirectory: CheckpointApi['listDirectory'] = (dir) => this.call('listDirectory', [dir]);
  chooseFile: CheckpointApi['chooseFile'] = (kind, suggested) => this.call('chooseFile', suggested === undefined ? [kind] : [kind, suggested]);
  addRecent: CheckpointApi['addRecent'] = (file) => this.call('addRecent', [file]);
  inspect: CheckpointApi['inspect'] = (file) => this.call('inspect', [file]);
  tensorStats: CheckpointApi['tensorStats'] = (file, path, bins) => this.call('tensorStats', [file, path, bins]);
  previewConversion: CheckpointApi['previewConversion'] = (file, rules, output) => this.call('previewConversion', [file, rules, output]);
  startConversion: CheckpointApi['startConversion'] = (file, rules, output, force) => this.call('startConversion', [file, rules, output, force]);
  planBatch: CheckpointApi['planBatch'] = (folder, outDir, rules) => this.call('planBatch', [folder, outDir, rules]);
  startBatch: CheckpointApi['startBatch'] = (folder, outDir, rules, force, jobs) => this.call('startBatch', [folder, outDir, rules, force, jobs]);
  cancelJob: CheckpointApi['cancelJob'] = (job) => this.call('cancelJob', [job]);
  readDevices: CheckpointApi['readDevices'] = () => this.call('readDevices', []);
  devicePlan: CheckpointApi['devicePlan'] = (counts, ddpWorldSize) => this.call('devicePlan', ddpWorldSize === undefined ? [counts] : [counts, ddpWorldSize]);
  watchDevices: CheckpointApi['watchDevices'] = async (on) => {
    this.watching = on;
    await this.call('watchDevices', [on]);
  };

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

  private connect(): void {
    if (this.socket || this.retryTimer) return;
    const url = new URL(EVENTS_PATH, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    this.socket = ws;
    ws.onopen = () => {
      this.retryMs = 500;
      this.setState('open');
      // A server restarted under us forgot the live device subscription; ask again.
      if (this.everOpened && this.watching) this.call('watchDevices', [true]).catch(() => undefined);
      this.everOpened = true;
    };
    ws.onmessage = (m) => {
      let event: ApiEvent;
      try {
        event = JSON.parse(String(m.data)) as ApiEvent;
      } catch {
        return;
      }
      for (const l of [...this.listeners]) l(event);
    };
    ws.onclose = () => {
      this.socket = null;
      this.setState(this.everOpened ? 'reconnecting' : 'connecting');
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }
}
