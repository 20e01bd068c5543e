// The one way the UI reaches the Node side: the Electron preload bridge (`window.ckpt`) when the
// app runs in its window, else the web client of `ckpt serve`. Both become the CheckpointApi of
// shared/api.ts; the views see nothing else.
import { API_METHODS, type CheckpointApi } from '../../../shared/api.ts';
import { unwrapResult, type IpcResult, type MenuCommand, type PreloadBridge } from '../../../shared/web-transport.ts';
import { toApiError } from './errors.ts';
import { WebClient } from './web-client.ts';

declare global {
  interface Window {
    ckpt?: PreloadBridge;
  }
}

let api: CheckpointApi | null = null;

/** The preload answers each call with an IpcResult envelope; unwrap it into a value or an ApiError. */
function fromBridge(bridge: PreloadBridge): CheckpointApi {
  const out: Record<string, unknown> = { onEvent: (listener: Parameters<CheckpointApi['onEvent']>[0]) => bridge.onEvent(listener) };
  for (const m of API_METHODS) {
    const call = bridge[m] as (...a: unknown[]) => Promise<IpcResult<unknown>>;
    out[m] = async (...args: unknown[]) => {
      let r: IpcResult<unknown>;
      try {
        r = await call(...args);
      } catch (e) {
        throw toApiError(e);
      }
      return unwrapResult(r);
    };
  }
  return out as unknown as CheckpointApi;
}

export function getApi(): CheckpointApi {
  api ??= window.ckpt ? fromBridge(window.ckpt) : new WebClient();
  return api;
}

/** The path of a dropped file, where the shell can tell it (Electron); null in a browser. */
export function droppedPath(file: File): string | null {
  try {
    return window.ckpt?.pathForFile(file) || null;
  } catch {
    return null;
  }
}

/** Files and folders the native menu (or the OS) asks the window to open; Electron only. */
export function onMenu(listener: (c: MenuCommand) => void): () => void {
  return window.ckpt?.onMenu(listener) ?? (() => undefined);
}

export { ApiError } from '../../../shared/api.ts';
export { errorText, toApiError } from './errors.ts';
export { SESSION_EXPIRED, SESSION_EXPIRED_HELP, WebClient, type ConnectionState } from './web-client.ts';
