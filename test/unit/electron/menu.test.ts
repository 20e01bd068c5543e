// The native menu as data (menuTemplate): what it offers and which action each item runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MenuItemConstructorOptions } from 'electron';
import { menuTemplate, type MenuActions } from '../../../main/electron/menu.ts';

function record(): { actions: MenuActions; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    actions: {
      openFile: () => calls.push('file'),
      openFolder: () => calls.push('folder'),
      openRecent: (f) => calls.push(`recent ${f}`),
      openSample: () => calls.push('sample'),
      about: () => calls.push('about'),
    },
  };
}

const sub = (item: MenuItemConstructorOptions | undefined): MenuItemConstructorOptions[] => (item?.submenu ?? []) as MenuItemConstructorOptions[];
const byLabel = (items: MenuItemConstructorOptions[], label: string): MenuItemConstructorOptions => {
  const hit = items.find((i) => i.label?.replace('&', '') === label);
  assert.ok(hit, `no '${label}' in ${items.map((i) => i.label ?? i.role).join(', ')}`);
  return hit;
};
const click = (item: MenuItemConstructorOptions): void => (item.click as () => void)();

test('File opens a checkpoint, a folder, a recent file or the sample; Help has About', () => {
  const { actions, calls } = record();
  const menu = menuTemplate(['/data/a.pt', '/data/run/b.pt'], actions, 'linux');
  assert.deepEqual(
    menu.map((m) => m.label?.replace('&', '') ?? m.role),
    ['File', 'editMenu', 'View', 'Help'],
  );
  const file = sub(byLabel(menu, 'File'));
  click(byLabel(file, 'Open Checkpoint…'));
  click(byLabel(file, 'Open Folder…'));
  const recent = sub(byLabel(file, 'Open Recent'));
  assert.deepEqual(
    recent.map((r) => r.label),
    ['a.pt  —  /data', 'b.pt  —  /data/run'],
  );
  click(recent[1]!);
  click(byLabel(file, 'Open Sample Workspace'));
  assert.equal(file.at(-1)!.role, 'quit');
  click(byLabel(sub(byLabel(menu, 'Help')), 'About Checkpoint Workstation'));
  assert.deepEqual(calls, ['file', 'folder', 'recent /data/run/b.pt', 'sample', 'about']);
  assert.equal(byLabel(file, 'Open Checkpoint…').accelerator, 'CmdOrCtrl+O');
});

test('no recent files: one disabled line; developer tools only in development', () => {
  const { actions } = record();
  const recent = sub(byLabel(sub(menuTemplate([], actions, 'linux')[0]), 'Open Recent'));
  assert.deepEqual(
    recent.map((r) => [r.label, r.enabled]),
    [['No recent files', false]],
  );
  const view = (dev: boolean) => sub(byLabel(menuTemplate([], actions, 'linux', dev), 'View')).map((i) => i.role);
  assert.ok(!view(false).includes('toggleDevTools'));
  assert.ok(view(true).includes('toggleDevTools'));
});

test('macOS gets the app menu first and Close instead of Quit in File', () => {
  const menu = menuTemplate([], record().actions, 'darwin');
  assert.equal(menu[0]!.role, 'appMenu');
  assert.equal(sub(byLabel(menu, 'File')).at(-1)!.role, 'close');
});
