/**
 * The one window and the locks around it: sandboxed, context-isolated page without Node; no
 * navigation away from the app, no new windows (https links go to the system browser), no
 * webviews, no permissions but writing the clipboard, and the CSP on every response.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, session, shell, type WebContents } from 'electron';
import { findUp } from '../service/app-paths.ts';
import { APP_CSP, APP_ORIGIN, INDEX_URL } from './app-protocol.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Locks applied to the session and to every web contents the app ever creates. */
export function hardenApp(): void {
  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_wc, permission, callback, details) =>
    callback(permission === 'clipboard-sanitized-write' && details.requestingUrl.startsWith(`${APP_ORIGIN}/`)),
  );
  ses.setPermissionCheckHandler((_wc, permission, origin) => permission === 'clipboard-sanitized-write' && origin === APP_ORIGIN);
  ses.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [APP_CSP] } });
  });
  app.on('web-contents-created', (_e, contents: WebContents) => {
    contents.on('will-attach-webview', (e) => e.preventDefault());
    contents.on('will-navigate', (e) => e.preventDefault());
    contents.on('will-redirect', (e) => e.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      if (/^https:\/\//.test(url)) void shell.openExternal(url);
      return { action: 'deny' };
    });
  });
}

export function createMainWindow(): BrowserWindow {
  const icon = findUp(here, 'build/icons/icon.png');
  const win = new BrowserWindow({
    width: 1320,
    height: 860,
    minWidth: 880,
    minHeight: 560,
    show: false,
    title: 'Checkpoint Workstation',
    backgroundColor: '#101418',
    ...(icon && fs.existsSync(icon) ? { icon } : {}),
    webPreferences: {
      preload: path.join(here, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  void win.loadURL(INDEX_URL);
  return win;
}
