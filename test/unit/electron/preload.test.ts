// The built preload (dist/electron/preload.cjs, from `npm run build`) run as Electron runs a
// sandboxed preload: a CommonJS script whose only `require` is 'electron'. A fake electron
// module records what it exposes and what it sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { API_METHODS, EVENT_CHANNEL, ipcChannel } from '../../../shared/api.ts';
import { MENU_CHANNEL } from '../../../shared/web-transport.ts';

const PRELOAD = fileURLToPath(new URL('../../../dist/electron/preload.cjs', import.meta.url));

function loadPreload() {
  const exposed = new Map<string, Record<string, (...a: unknown[]) => unknown>>();
  const invoked: unknown[][] = [];
  const listeners = new Map<string, Set<(...a: unknown[]) => void>>();
  const required: string[] = [];
  const electron = {
    contextBridge: { exposeInMainWorld: (key: string, api: Record<string, (...a: unknown[]) => unknown>) => exposed.set(key, api) },
    ipcRenderer: {
      invoke: async (...args: unknown[]) => {
        invoked.push(args);
        return { ok: true, value: 'answer' };
      },
      on: (channel: string, l: (...a: unknown[]) => void) => void (listeners.get(channel) ?? listeners.set(channel, new Set()).get(channel)!).add(l),
      removeListener: (channel: string, l: (...a: unknown[]) => void) => void listeners.get(channel)?.delete(l),
    },
    webUtils: { getPathForFile: (f: { name: string }) => `/dropped/${f.name}` },
  };
  const module = { exports: {} };
  const require = (id: string): unknown => {
    required.push(id);
    if (id === 'electron') return electron;
    throw new Error(`a sandboxed preload cannot require '${id}'`);
  };
  vm.runInNewContext(fs.readFileSync(PRELOAD, 'utf8'), { require, module, exports: module.exports, console }, { filename: PRELOAD });
  const emit = (channel: string, value: unknown): void => listeners.get(channel)?.forEach((l) => l({ sender: 'event' }, value));
  return { exposed, invoked, listeners, required, emit };
}

test('the preload is one CommonJS script that requires only electron', () => {
  const { required, exposed } = loadPreload();
  assert.deepEqual([...new Set(required)], ['electron']);
  assert.deepEqual([...exposed.keys()], ['ckpt']);
});

test('window.ckpt has one function per contract method, each invoking its channel', async () => {
  const { exposed, invoked } = loadPreload();
  const api = exposed.get('ckpt')!;
  assert.deepEqual(Object.keys(api).sort(), [...API_METHODS, 'onEvent', 'onMenu', 'pathForFile'].sort());
  for (const m of API_METHODS) assert.deepEqual(await api[m]!('a', 1), { ok: true, value: 'answer' });
  assert.deepEqual(
    invoked,
    API_METHODS.map((m) => [ipcChannel(m), 'a', 1]),
  );
  assert.ok(!('ipcRenderer' in api) && !('invoke' in api) && !('send' in api), 'ipcRenderer is not exposed');
});

test('onEvent and onMenu deliver only the payload and unsubscribe', () => {
  const { exposed, emit, listeners } = loadPreload();
  const api = exposed.get('ckpt')!;
  const got: unknown[] = [];
  const off = api['onEvent']!((e: unknown) => got.push(e)) as () => void;
  const offMenu = api['onMenu']!((c: unknown) => got.push(c)) as () => void;
  emit(EVENT_CHANNEL, { type: 'job-progress' });
  emit(MENU_CHANNEL, { type: 'open-file', path: '/x.pt' });
  assert.deepEqual(got, [{ type: 'job-progress' }, { type: 'open-file', path: '/x.pt' }]);
  off();
  offMenu();
  assert.equal(listeners.get(EVENT_CHANNEL)!.size + listeners.get(MENU_CHANNEL)!.size, 0);
  assert.throws(() => api['onEvent']!('not a function'), /listener must be a function/);
  assert.equal(api['pathForFile']!({ name: 'dp.pt' }), '/dropped/dp.pt');
});
