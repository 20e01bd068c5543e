/**
 * The native menu: File (open a checkpoint or a folder, recent files, quit), Edit, View, Help.
 * `menuTemplate` is plain data, so it is tested without Electron.
 */
import * as path from 'node:path';
import type { MenuItemConstructorOptions } from 'electron';

export interface MenuActions {
  openFile(): void;
  openFolder(): void;
  openRecent(file: string): void;
  openSample(): void;
  about(): void;
}

export function menuTemplate(recent: string[], actions: MenuActions, platform: string = process.platform, dev = false): MenuItemConstructorOptions[] {
  const mac = platform === 'darwin';
  const recentItems: MenuItemConstructorOptions[] = recent.length
    ? recent.map((f) => ({ label: `${path.basename(f)}  —  ${path.dirname(f)}`, click: () => actions.openRecent(f) }))
    : [{ label: 'No recent files', enabled: false }];
  return [
    ...(mac ? [{ role: 'appMenu' as const }] : []),
    {
      label: '&File',
      submenu: [
        { label: 'Open Checkpoint…', accelerator: 'CmdOrCtrl+O', click: () => actions.openFile() },
        { label: 'Open Folder…', accelerator: 'CmdOrCtrl+Shift+O', click: () => actions.openFolder() },
        { label: 'Open Recent', submenu: recentItems },
        { label: 'Open Sample Workspace', click: () => actions.openSample() },
        { type: 'separator' },
        mac ? { role: 'close' } : { role: 'quit', label: 'Quit', accelerator: 'CmdOrCtrl+Q' },
      ],
    },
    { role: 'editMenu' },
    {
      label: '&View',
      submenu: [
        ...(dev ? [{ role: 'reload' as const }, { role: 'toggleDevTools' as const }, { type: 'separator' as const }] : []),
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    { label: '&Help', role: 'help', submenu: [{ label: 'About Checkpoint Workstation', click: () => actions.about() }] },
  ];
}
