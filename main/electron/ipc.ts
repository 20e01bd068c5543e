/**
 * The IPC side of the API: one `ipcMain.handle` per contract method, routed to the service.
 * Each call is checked before it reaches the service: the sender must be the app's own window
 * (its webContents and its page), and the arguments must have the method's count and types.
 * Answers are `IpcResult` envelopes, since an Error crossing IPC loses its fields. Written
 * against a small structural interface, so it is tested without Electron.
 */
import { API_METHODS, EVENT_CHANNEL, ipcChannel, type ApiEvent, type CheckpointApi } from '../../shared/api.ts';
import type { IpcResult } from '../../shared/web-transport.ts';
import { callMethod } from '../service/call-method.ts';

export interface IpcEventLike {
  sender: { id: number };
  senderFrame?: { url: string } | null;
}

export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcEventLike, ...args: unknown[]) => unknown): void;
  removeHandler(channel: string): void;
}

export const UNTRUSTED: IpcResult<never> = { ok: false, error: { kind: 'usage', message: 'refused: this call did not come from the app window' } };

/**
 * Binds every method; `sendEvent` (the window's webContents.send on EVENT_CHANNEL) receives the
 * service's pushed events. Returns the function that unbinds it all.
 */
export function bindIpc(
  ipcMain: IpcMainLike,
  service: CheckpointApi,
  isTrustedSender: (e: IpcEventLike) => boolean,
  sendEvent?: (channel: string, e: ApiEvent) => void,
): () => void {
  for (const method of API_METHODS) {
    ipcMain.handle(ipcChannel(method), (event, ...args) => {
      let trusted = false;
      try {
        trusted = isTrustedSender(event);
      } catch {
        /* a sender we cannot even examine is not trusted */
      }
      return trusted ? callMethod(service, method, args) : UNTRUSTED;
    });
  }
  const unsubscribe = sendEvent ? service.onEvent((e) => sendEvent(EVENT_CHANNEL, e)) : () => {};
  return () => {
    unsubscribe();
    for (const method of API_METHODS) ipcMain.removeHandler(ipcChannel(method));
  };
}
