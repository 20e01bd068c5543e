import { ApiError, type CheckpointApi } from '../../shared/api.ts';
import { checkArguments, isApiMethod } from '../../shared/api-schema.ts';
import type { IpcResult } from '../../shared/web-transport.ts';
import { asCheckpointError } from '../errors.ts';

/**
 * One API call as a transport (HTTP, IPC) makes it, by method name with untrusted arguments:
 * the arguments are checked here, once (a verify report can be 64 MB), against the method's
 * schemas (shared/api-schema.ts); then the call goes to the service, which trusts them, and
 * comes back as a result or an error (never a throw, never a stack trace).
 */
export async function callMethod(service: CheckpointApi, method: unknown, args: unknown): Promise<IpcResult<unknown>> {
  try {
    if (!isApiMethod(method)) return { ok: false, error: { kind: 'usage', message: `unknown API method '${String(method).slice(0, 60)}'` } };
    const checked = checkArguments(method, args);
    if (!checked.ok) return { ok: false, error: { kind: 'usage', message: checked.message } };
    const value = await (service[method] as (...a: unknown[]) => Promise<unknown>)(...checked.value);
    return { ok: true, value: value ?? null };
  } catch (e) {
    return { ok: false, error: e instanceof ApiError ? e.info : asCheckpointError(e).toInfo() };
  }
}
