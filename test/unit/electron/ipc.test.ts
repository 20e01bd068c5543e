// The IPC adapter without Electron: a fake ipcMain records the handlers, a fake window sender
// calls them, and the real API service answers on the real sample workspace.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { API_METHODS, EVENT_CHANNEL, ipcChannel, type ApiEvent, type JobStatus } from '../../../shared/api.ts';
import type { InspectReport } from '../../../shared/inspect.ts';
import type { ReshardReport, ReshardRequest } from '../../../shared/reshard.ts';
import { unwrapResult, type IpcResult } from '../../../shared/web-transport.ts';
import { createApiService } from '../../../main/service/service.ts';
import { bindIpc, type IpcEventLike, type IpcMainLike } from '../../../main/electron/ipc.ts';
import { CPU_RULES, DP, EventLog, tempDir } from '../service/helpers.ts';

type Handler = (event: IpcEventLike, ...args: unknown[]) => unknown;

class FakeIpcMain implements IpcMainLike {
  readonly handlers = new Map<string, Handler>();
  handle(channel: string, listener: Handler): void {
    assert.ok(!this.handlers.has(channel), `${channel} bound twice`);
    this.handlers.set(channel, listener);
  }
  removeHandler(channel: string): void {
    this.handlers.delete(channel);
  }
  /** What the renderer's ipcRenderer.invoke would get back. */
  async invoke(event: IpcEventLike, channel: string, ...args: unknown[]): Promise<IpcResult<unknown>> {
    const h = this.handlers.get(channel);
    assert.ok(h, `no handler for ${channel}`);
    return (await h(event, ...args)) as IpcResult<unknown>;
  }
}

const RESHARD: ReshardRequest = {
  inputs: [path.join(path.dirname(DP), 'ddp')],
  target: { kind: 'single' },
  format: 'torch',
  output: '/tmp/x.pt',
  force: false,
  preset: null,
  takeRank: null,
  dryRun: false,
};

const WINDOW_ID = 7;
const windowEvent: IpcEventLike = { sender: { id: WINDOW_ID }, senderFrame: { url: 'app://ckpt/index.html' } };
const isTrusted = (e: IpcEventLike): boolean => e.sender.id === WINDOW_ID && !!e.senderFrame?.url.startsWith('app://ckpt/');

const service = createApiService({ shell: 'electron', configDir: tempDir('ipc-config') });
const ipc = new FakeIpcMain();
const sent = new EventLog();
const unbind = bindIpc(ipc, service, isTrusted, (channel, e) => {
  assert.equal(channel, EVENT_CHANNEL);
  sent.push(e);
});
after(() => service.close());

test('every contract method has its channel', () => {
  assert.deepEqual([...ipc.handlers.keys()].sort(), API_METHODS.map(ipcChannel).sort());
});

test('the window calls inspect and gets the DP verdict', async () => {
  const r = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('inspect'), DP)) as InspectReport;
  assert.equal(r.layout.kind, 'dp');
  assert.deepEqual(r.layout.prefixes, ['module.']);
});

test('calls are routed to the method of their channel', async () => {
  const w = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('getWorkspace'))) as { shell: string; sampleFile: string };
  assert.equal(w.shell, 'electron');
  assert.equal(w.sampleFile, DP);
  const listing = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('listDirectory'), path.dirname(DP))) as { entries: { name: string }[] };
  assert.ok(listing.entries.some((e) => e.name === 'dp.pt'));
  assert.deepEqual(await ipc.invoke(windowEvent, ipcChannel('watchDevices'), false), { ok: true, value: null });
});

test('an untrusted sender is refused before the service is reached', async () => {
  const others: IpcEventLike[] = [
    { sender: { id: 99 }, senderFrame: { url: 'app://ckpt/index.html' } }, // another webContents
    { sender: { id: WINDOW_ID }, senderFrame: { url: 'https://evil.example/' } }, // the window navigated away
    { sender: { id: WINDOW_ID }, senderFrame: null }, // a frame that is gone
  ];
  const out = path.join(tempDir('ipc-untrusted'), 'never.pt');
  for (const e of others) {
    const r = await ipc.invoke(e, ipcChannel('startConversion'), DP, CPU_RULES, out, false);
    assert.equal(r.ok, false);
    assert.match((r as { error: { message: string } }).error.message, /did not come from the app window/);
  }
  const throwing = new FakeIpcMain();
  const unbindThrowing = bindIpc(throwing, service, () => {
    throw new Error('cannot tell');
  });
  assert.equal((await throwing.invoke(windowEvent, ipcChannel('getWorkspace'))).ok, false);
  unbindThrowing();
});

test('bad arguments come back as usage errors, one line each', async () => {
  const cases: [string, unknown[], RegExp][] = [
    ['inspect', [], /inspect takes 1 argument \(file\), not 0/],
    ['inspect', ['relative.pt'], /file must be an absolute path/],
    ['inspect', [{ toString: 'x' }], /file must be a string, not object/],
    ['tensorStats', [DP, 'module.conv1.weight', 8], /path must be a list/],
    ['startConversion', [DP, { ...CPU_RULES, preset: { name: 'gpu', index: -1 } }, null, false], /rules\.preset\.index must be a whole number from 0 to 1023/],
    ['startBatch', [path.dirname(DP), '/tmp/out', CPU_RULES, false, 1.5], /jobs must be a whole number/],
    ['cancelJob', [7], /job must be a job id/],
    ['jobStatus', [], /jobStatus takes 1 argument \(job\), not 0/],
    ['jobStatus', ['job-1; rm -rf /'], /job must be a job id/],
    ['startVerify', [{ model: 'model.onnx', data: '/d.npz', checkpoint: DP }], /options\.model must be an absolute path/],
    ['startVerify', [{ model: '/m.onnx', data: '/d.npz', checkpoint: DP, device: 'cuda:0 --evil' }], /options\.device must be auto, cpu, cuda or cuda:N/],
    ['startVerify', [{ model: '/m.onnx', data: '/d.npz', checkpoint: DP, preprocess: { mean: 'zero' } }], /options\.preprocess\.mean must be a list/],
    ['startVerify', [{ model: '/m.onnx', data: '/d.npz', checkpoint: DP }, 'extra'], /startVerify takes 1 argument \(options\), not 2/],
    ['verifyReportHtml', [{ version: 1 }], /report\.createdAt must be a string, not nothing/],
    ['verifyReportHtml', [null], /report must be an object, not null/],
    ['planReshard', [{ ...RESHARD, inputs: 'ddp' }], /request\.inputs must be a list/],
    ['planReshard', [{ ...RESHARD, output: '../out.pt' }], /request\.output must be an absolute path/],
    ['startReshard', [{ ...RESHARD, target: { kind: 'ranks', count: 1e9 } }], /request\.target\.count must be a whole number from 1 to 4096/],
    ['startReshard', [{ ...RESHARD, force: 'yes' }], /request\.force must be true or false/],
  ];
  for (const [method, args, message] of cases) {
    const r = await ipc.invoke(windowEvent, ipcChannel(method as never), ...args);
    assert.equal(r.ok, false, method);
    const error = (r as { error: { kind: string; message: string } }).error;
    assert.equal(error.kind, 'usage');
    assert.match(error.message, message);
    assert.doesNotMatch(error.message, /\n/);
  }
});

test('engine errors keep their kind across IPC', async () => {
  const r = await ipc.invoke(windowEvent, ipcChannel('inspect'), path.join(path.dirname(DP), 'README.md'));
  assert.equal(r.ok, false);
  assert.equal((r as { error: { kind: string } }).error.kind, 'not-a-checkpoint');
  assert.throws(
    () => unwrapResult(r),
    (e: Error) => e.name === 'ApiError',
  );
});

test('job events are forwarded to the window', async () => {
  const out = path.join(tempDir('ipc-convert'), 'cpu.pt');
  const job = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('startConversion'), DP, CPU_RULES, out, false)) as string;
  const end = await sent.end(job);
  assert.equal(end.type, 'job-done');
  assert.equal((end as Extract<ApiEvent, { type: 'job-done'; kind: 'convert' }>).result.verified, true);
  assert.ok(sent.of(job).some((e) => e.type === 'job-progress'));
});

test('a re-shard over IPC: planned, run, its events forwarded, its status asked', async () => {
  const out = path.join(tempDir('ipc-reshard'), 'merged.pt');
  const planned = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('planReshard'), { ...RESHARD, output: out })) as ReshardReport;
  assert.deepEqual(
    planned.plan.input.columns.map((c) => c.rank),
    [0, 1],
  );
  const job = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('startReshard'), { ...RESHARD, output: out })) as string;
  const end = await sent.end(job);
  assert.equal(end.type, 'job-done');
  assert.equal((end as Extract<ApiEvent, { type: 'job-done'; kind: 'reshard' }>).result.verified, true);
  const status = unwrapResult(await ipc.invoke(windowEvent, ipcChannel('jobStatus'), job)) as JobStatus;
  assert.deepEqual([status.state, status.kind], ['done', 'reshard']);
});

test('unbinding removes every handler and stops forwarding', async () => {
  unbind();
  assert.equal(ipc.handlers.size, 0);
  const before = sent.events.length;
  const log = new EventLog();
  const off = service.onEvent(log.push);
  const job = await service.startConversion(DP, CPU_RULES, path.join(tempDir('ipc-unbound'), 'cpu.pt'), false);
  await log.end(job);
  off();
  assert.equal(sent.events.length, before);
});
