// Every failure the UI sees is an ApiError with a kind and one line of text, whichever transport
// carried it: the Electron preload (where contextBridge turns errors into plain objects or into
// "Error invoking remote method" messages) or the web client.
import { ApiError } from '../../../shared/api.ts';
import type { ErrorInfo, ErrorKind } from '../../../shared/errors.ts';

const KINDS: readonly ErrorKind[] = [
  'not-a-checkpoint',
  'lfs-pointer',
  'truncated',
  'corrupt-zip',
  'bad-pickle',
  'unsupported',
  'too-large',
  'io',
  'usage',
  'exists',
  'verify-failed',
  'cancelled',
  'python',
  'internal',
];

export function isErrorInfo(v: unknown): v is ErrorInfo {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return typeof o['kind'] === 'string' && typeof o['message'] === 'string';
}

function kindOf(text: string): ErrorKind {
  return (KINDS as readonly string[]).includes(text) ? (text as ErrorKind) : 'internal';
}

/** Turns anything thrown or rejected into an ApiError. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isErrorInfo(e)) return new ApiError({ ...e, kind: kindOf(e.kind) });
  if (e && typeof e === 'object' && isErrorInfo((e as { info?: unknown }).info)) return toApiError((e as { info: unknown }).info);
  const message = e instanceof Error ? e.message : String(e);
  // Electron's ipcRenderer.invoke: "Error invoking remote method 'ckpt:x': Error: <kind>: <message>"
  const bare = message.replace(/^Error invoking remote method '[^']*': (?:\w*Error: )?/, '');
  const m = /^([a-z-]+): (.*)$/s.exec(bare);
  if (m && KINDS.includes(m[1] as ErrorKind)) return new ApiError({ kind: m[1] as ErrorKind, message: m[2]! });
  return new ApiError({ kind: 'internal', message: bare });
}

/** One line for the user. */
export function errorText(e: unknown): string {
  return toApiError(e).info.message;
}
