/**
 * The desktop app's main process: lifecycle, the window, native menus and dialogs. All the work
 * is the API service's (main/service/service.ts), reached from the window through ipc.ts; this file
 * only wires Electron to it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { app, BrowserWindow, dialog, ipcMain, Menu, type IpcMainInvokeEvent } from 'electron';
import { MENU_CHANNEL, type MenuCommand } from '../../shared/web-transport.ts';
import { SAMPLE_FILE } from '../service/app-paths.ts';
import { createApiService } from '../service/service.ts';
import { APP_ORIGIN, registerAppScheme, serveAppScheme } from './app-protocol.ts';
import { bindIpc, type IpcEventLike, type IpcMainLike } from './ipc.ts';
import { menuTemplate } from './menu.ts';
import { createMainWindow, hardenApp } from './window.ts';

registerAppScheme();
app.enableSandbox();

let win: BrowserWindow | null = null;
/** What to open once the page is there: from the command line, the OS (macOS open-file) or a second launch. */
const pending: MenuCommand[] = [];

const service = createApiService({
  shell: 'electron',
  configDir: app.getPath('userData'),
  chooseFile,
  onRecentChanged: (recent) => {
    setMenu(recent);
    if (recent[0]) app.addRecentDocument(recent[0]);
  },
});

function send(cmd: MenuCommand): void {
  if (win && !win.isDestroyed() && !win.webContents.isLoading()) win.webContents.send(MENU_CHANNEL, cmd);
  else pending.push(cmd);
}

function openPath(p: string): void {
  const full = path.resolve(p);
  try {
    send({ type: fs.statSync(full).isDirectory() ? 'open-folder' : 'open-file', path: full });
  } catch {
    /* a path that does not exist: nothing to open */
  }
}

async function chooseFile(kind: 'file' | 'folder' | 'save', suggested?: string): Promise<string | null> {
  const parent = win && !win.isDestroyed() ? win : null;
  const defaultPath = suggested ? { defaultPath: suggested } : {};
  if (kind === 'save') {
    const r = parent ? await dialog.showSaveDialog(parent, defaultPath) : await dialog.showSaveDialog(defaultPath);
    return r.canceled || !r.filePath ? null : r.filePath;
  }
  const options: Electron.OpenDialogOptions = {
    ...defaultPath,
    properties: [kind === 'folder' ? 'openDirectory' : 'openFile'],
    ...(kind === 'file'
      ? {
          filters: [
            { name: 'Checkpoints', extensions: ['pt', 'pth', 'bin', 'ckpt', 'tar', 'safetensors', 'npz', 'npy', 'pkl', 'onnx'] },
            { name: 'All files', extensions: ['*'] },
          ],
        }
      : {}),
  };
  const r = parent ? await dialog.showOpenDialog(parent, options) : await dialog.showOpenDialog(options);
  return r.canceled ? null : (r.filePaths[0] ?? null);
}

function setMenu(recent: string[]): void {
  const pick = (kind: 'file' | 'folder') => (): void => {
    void chooseFile(kind).then((p) => p && send({ type: kind === 'file' ? 'open-file' : 'open-folder', path: p }));
  };
  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      menuTemplate(
        recent,
        {
          openFile: pick('file'),
          openFolder: pick('folder'),
          openRecent: openPath,
          openSample: () => void service.getWorkspace().then((w) => send({ type: 'open-file', path: path.join(w.sampleDir, SAMPLE_FILE) })),
          about: () =>
            void dialog.showMessageBox({
              type: 'info',
              title: 'About Checkpoint Workstation',
              message: `Checkpoint Workstation ${app.getVersion()}`,
              detail: `Inspect, convert, re-shard and verify PyTorch checkpoints without Python.\n\nElectron ${process.versions.electron} · Node ${process.versions.node} · Chromium ${process.versions.chrome}`,
            }),
        },
        process.platform,
        !app.isPackaged,
      ),
    ),
  );
}

/** Only the app window's own top-level page may call the API. */
function isTrustedSender(e: IpcEventLike): boolean {
  const event = e as IpcMainInvokeEvent;
  const frame = event.senderFrame;
  return !!win && !win.isDestroyed() && event.sender.id === win.webContents.id && !!frame && frame.parent === null && frame.url.startsWith(`${APP_ORIGIN}/`);
}

function showWindow(): void {
  win = createMainWindow();
  win.webContents.on('did-finish-load', () => {
    for (const cmd of pending.splice(0)) win?.webContents.send(MENU_CHANNEL, cmd);
  });
  win.on('closed', () => {
    win = null;
  });
}

/** A command-line argument that names something to open: not a switch, not the app itself. */
function isDocument(arg: string, cwd: string): boolean {
  if (arg.startsWith('-')) return false;
  const full = path.resolve(cwd, arg);
  return full !== app.getAppPath() && !full.endsWith(`${path.sep}main.js`) && full !== process.execPath;
}

/** Wires the app up; only the first instance does (a second one hands its arguments over and quits). */
function start(): void {
  // A file named on the command line (`electron dist/electron/main.js model.pt`, or the packaged app's argument).
  for (const arg of process.argv.slice(app.isPackaged ? 1 : 2)) if (isDocument(arg, process.cwd())) openPath(arg);

  app.on('open-file', (e, file) => {
    e.preventDefault();
    openPath(file);
  });

  app.on('second-instance', (_e, argv, workingDirectory) => {
    for (const arg of argv.slice(1)) if (isDocument(arg, workingDirectory)) openPath(path.resolve(workingDirectory, arg));
    if (win) {
      if (win.isMinimized()) win.restore();
      win.focus();
    }
  });

  void app.whenReady().then(async () => {
    hardenApp();
    serveAppScheme();
    bindIpc(ipcMain as unknown as IpcMainLike, service, isTrustedSender, (channel, e) => {
      if (win && !win.isDestroyed()) win.webContents.send(channel, e);
    });
    setMenu((await service.getWorkspace()).recent);
    showWindow();
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) showWindow();
    });
  });

  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });

  // Running jobs are cancelled and the worker threads stopped before the process goes.
  let closed = false;
  app.on('will-quit', (e) => {
    if (closed) return;
    e.preventDefault();
    void service.close().finally(() => {
      closed = true;
      app.quit();
    });
  });
}

if (app.requestSingleInstanceLock()) start();
else app.quit();
