import { ApiError, type CheckpointApi } from '../../shared/api.ts';
import type { IpcResult } from '../../shared/web-transport.ts';
import { asCheckpointError } from '../errors.ts';
import { checkArgs, isApiMethod } from './check-args.ts';

/**
 * One API call as a transport makes it, by method name with untrusted arguments: checked, routed
 * to the service, and answered as a result or an error (never a throw, never a stack trace).
 */
export async function callMethod(service: CheckpointApi, method: unknown, args: unknown): Promise<IpcResult<unknown>> {
  try {
    if (!isApiMethod(method)) return { ok: false, error: { kind: 'usage', message: `unknown API method '${String(method).slice(0, 60)}'` } };
    const checked = checkArgs(method, args);
    const value = await (service[method] as (...a: unknown[]) => Promise<unknown>)(...checked);
    return { ok: true, value: value ?? null };
  } catch (e) {
    return { ok: false, error: e instanceof ApiError ? e.info : asCheckpointError(e).toInfo() };
  }
}
