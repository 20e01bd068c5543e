// The window's only door to Node: `window.ckpt`, one function per API method (each an
// ipcRenderer.invoke on that method's channel, answering an IpcResult), event and menu
// subscriptions, and the path of a dropped file. ipcRenderer itself is never exposed.
// Bundled to one CommonJS script that requires only 'electron' (sandboxed preload).
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import { API_METHODS, EVENT_CHANNEL, ipcChannel, type ApiEvent } from '../../shared/api.ts';
import { MENU_CHANNEL, type MenuCommand } from '../../shared/web-transport.ts';

function subscribe<T>(channel: string, listener: (value: T) => void): () => void {
  if (typeof listener !== 'function') throw new TypeError('a listener must be a function');
  const own = (_e: IpcRendererEvent, value: T): void => listener(value);
  ipcRenderer.on(channel, own);
  return () => {
    ipcRenderer.removeListener(channel, own);
  };
}

const api: Record<string, unknown> = {
  onEvent: (listener: (e: ApiEvent) => void) => subscribe(EVENT_CHANNEL, listener),
  onMenu: (listener: (c: MenuCommand) => void) => subscribe(MENU_CHANNEL, listener),
  pathForFile: (file: File) => webUtils.getPathForFile(file),
};
for (const m of API_METHODS) api[m] = (...args: unknown[]) => ipcRenderer.invoke(ipcChannel(m), ...args);

contextBridge.exposeInMainWorld('ckpt', api);
