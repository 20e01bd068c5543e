/**
 * How the UI reaches the Node side, besides the contract in api.ts: the HTTP and WebSocket paths
 * of web mode (`ckpt serve`) and the shape of the Electron preload bridge (`window.ckpt`).
 * No Node, no DOM: the renderer's clients import this file.
 *
 * Web mode
 *   - `POST /api/<method>` with `Content-Type: application/json` and a JSON array of the
 *     method's arguments → 200 with the JSON result (`null` for void), or a 4xx/5xx with
 *     `{ "error": ErrorInfo }`.
 *   - WebSocket `/api/events`: one JSON `ApiEvent` per text message, server to client only.
 *   - Every request carries the session token: the first page load as `?token=…` (the server
 *     answers with an HttpOnly SameSite=Strict cookie and a redirect to the same path without
 *     it), later requests by that cookie or an `Authorization: Bearer <token>` header.
 *   - Events of a job can arrive on the socket before the `start…` response that names the
 *     job: keep events of unknown jobs until the id is known.
 *   - Events sent while the socket is down are lost: after a reconnect, ask `jobStatus` about
 *     the jobs still followed (the web client does this itself).
 *   - A 200 answer is always the result, even one with an `error` field of its own (a
 *     `JobStatus` of a failed job); failures come only with a 4xx/5xx status.
 *
 * Electron
 *   `window.ckpt` has one method per contract method; each resolves to an `IpcResult`
 *   envelope (errors cross the context bridge without their fields otherwise), which
 *   `unwrapResult` turns back into the value or an `ApiError`.
 */
import type { ApiEvent, ApiMethod, CheckpointApi } from './api.ts';
import { ApiError } from './api.ts';
import type { ErrorInfo } from './errors.ts';

export const API_PREFIX = '/api/';
export const EVENTS_PATH = '/api/events';
/** the query parameter of the first page load */
export const TOKEN_QUERY = 'token';
/** the HttpOnly cookie the server sets from it: `ckpt_token_<port>`, the port the browser used (see tokenCookieName) */
export const TOKEN_COOKIE = 'ckpt_token';
/** what `ckpt serve` prints first on stdout, followed by the URL with the token */
export const STARTUP_PREFIX = 'Checkpoint Workstation: ';

export const apiPath = (m: ApiMethod): string => `${API_PREFIX}${m}`;

/** `Checkpoint Workstation: http://127.0.0.1:7860/?token=…` → the URL, or null. */
export function parseStartupLine(line: string): { url: string; origin: string; token: string } | null {
  if (!line.startsWith(STARTUP_PREFIX)) return null;
  const m = /^(https?:\/\/[^/\s]+)\/\?token=([A-Za-z0-9_-]+)\s*$/.exec(line.slice(STARTUP_PREFIX.length));
  return m ? { url: `${m[1]}/?token=${m[2]}`, origin: m[1]!, token: m[2]! } : null;
}

export type IpcResult<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

export function unwrapResult<T>(r: IpcResult<T>): T {
  if (r.ok) return r.value;
  throw new ApiError(r.error);
}

/** What the native menu (or the OS) asks the window to open. */
export type MenuCommand = { type: 'open-file'; path: string } | { type: 'open-folder'; path: string };
export const MENU_CHANNEL = 'ckpt:menu';

type Method<K extends ApiMethod> = CheckpointApi[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => Promise<IpcResult<R>> : never;

/** `window.ckpt` in the Electron window. */
export type PreloadBridge = { [K in ApiMethod]: Method<K> } & {
  onEvent(listener: (e: ApiEvent) => void): () => void;
  onMenu(listener: (c: MenuCommand) => void): () => void;
  /** the path of a dropped `File` (Electron hides `File.path` from sandboxed pages) */
  pathForFile(file: object): string;
};
