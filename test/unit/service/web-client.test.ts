// The browser's web client (renderer/src/api/web-client.ts) in Node, with a fake fetch and a fake
// WebSocket: when the event socket drops and comes back, the jobs it started and has not seen end
// are asked after (jobStatus), and what they missed arrives as the events they would have had.
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiEvent, CheckpointApi, JobStatus } from '../../../shared/api.ts';

class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  open(): void {
    this.onopen?.();
  }
  send(e: ApiEvent): void {
    this.onmessage?.({ data: JSON.stringify(e) });
  }
  drop(): void {
    this.onclose?.();
  }
}

/** What the fake server answers, by method; every call is logged. */
let answers: Record<string, (args: unknown[]) => unknown> = {};
let calls: { method: string; args: unknown[] }[] = [];

const saved = {
  fetch: globalThis.fetch,
  WebSocket: (globalThis as Record<string, unknown>)['WebSocket'],
  location: (globalThis as Record<string, unknown>)['location'],
};
beforeEach(() => {
  FakeSocket.all = [];
  calls = [];
  answers = {};
  Object.assign(globalThis, {
    WebSocket: FakeSocket,
    location: { href: 'http://127.0.0.1:7860/', protocol: 'http:' },
    fetch: async (url: string, init: { body: string }) => {
      const method = String(url).replace('/api/', '');
      const args = JSON.parse(init.body) as unknown[];
      calls.push({ method, args });
      const answer = answers[method];
      if (!answer) return new Response(JSON.stringify({ error: { kind: 'usage', message: `no fake for ${method}` } }), { status: 400 });
      return new Response(JSON.stringify(answer(args) ?? null), { status: 200 });
    },
  });
});
afterEach(() => Object.assign(globalThis, saved));

// Imported by a computed name: the client is DOM code, outside this project's (Node) type check.
type Client = Pick<CheckpointApi, 'onEvent' | 'startVerify' | 'startReshard' | 'startConversion' | 'startBatch'>;
const clientModule = '../../../renderer/src/api/web-client.ts';
const { WebClient } = (await import(clientModule)) as { WebClient: new () => Client };

/** A client with one listener and its socket open; the events it delivered. */
function connected() {
  const client = new WebClient();
  const got: ApiEvent[] = [];
  client.onEvent((e) => got.push(e));
  FakeSocket.all[0]!.open();
  return { client, got };
}

/** Drops the socket, waits for the client to open a new one, and opens it. */
async function reconnect(): Promise<void> {
  const before = FakeSocket.all.length;
  FakeSocket.all.at(-1)!.drop();
  const t0 = Date.now();
  while (FakeSocket.all.length === before) {
    if (Date.now() - t0 > 5000) throw new Error('the client did not reconnect');
    await new Promise((r) => setTimeout(r, 20));
  }
  FakeSocket.all.at(-1)!.open();
  await new Promise((r) => setTimeout(r, 100)); // the catch-up calls
}

const REPORT = { verdict: 'PASS' };

test('a job that finished while the socket was down is delivered as its job-done, once', async () => {
  const { client, got } = connected();
  answers['startVerify'] = () => 'job-4';
  const job = await client.startVerify({ model: '/m.onnx', data: '/d.npz', checkpoint: '/c.pt' });
  assert.equal(job, 'job-4');
  FakeSocket.all[0]!.send({ type: 'job-progress', job, progress: { done: 64, total: 360, unit: 'samples' } });
  answers['jobStatus'] = (): JobStatus => ({ state: 'done', kind: 'verify', progress: { done: 360, total: 360, unit: 'samples' }, result: REPORT });
  await reconnect();
  assert.deepEqual(
    calls.filter((c) => c.method === 'jobStatus').map((c) => c.args),
    [['job-4']],
  );
  assert.deepEqual(
    got.map((e) => e.type),
    ['job-progress', 'job-done'],
  );
  assert.deepEqual(got[1], { type: 'job-done', job: 'job-4', kind: 'verify', result: REPORT });
  // it ended: the next reconnect does not ask again
  await reconnect();
  assert.equal(calls.filter((c) => c.method === 'jobStatus').length, 1);
  assert.equal(got.length, 2);
});

test('a job still running gets its latest progress, and its end when it comes', async () => {
  const { client, got } = connected();
  answers['startReshard'] = () => 'job-7';
  const job = await client.startReshard({
    inputs: ['/r'],
    target: { kind: 'single' },
    format: 'torch',
    output: '/o.pt',
    force: false,
    preset: null,
    takeRank: null,
    dryRun: false,
  });
  const progress = { done: 10, total: 20, unit: 'bytes' as const, phase: 'write' as const };
  answers['jobStatus'] = () => ({ state: 'running', kind: 'reshard', progress });
  await reconnect();
  assert.deepEqual(got, [{ type: 'job-progress', job, progress }]);
  FakeSocket.all.at(-1)!.send({ type: 'job-done', job, kind: 'reshard', result: { verified: true } as never });
  assert.equal(got.at(-1)!.type, 'job-done');
  await reconnect();
  assert.equal(calls.filter((c) => c.method === 'jobStatus').length, 1, 'ended: not asked again');
});

test('a job the server no longer knows (restarted) ends in a job-error that says so; so does one whose id now names another kind', async () => {
  const { client, got } = connected();
  answers['startConversion'] = () => 'job-1';
  answers['startBatch'] = () => 'job-2';
  await client.startConversion('/a.pt', {} as never, null, false);
  await client.startBatch('/in', '/out', {} as never, false, 1);
  answers['jobStatus'] = ([id]) => (id === 'job-1' ? { state: 'unknown' } : { state: 'running', kind: 'verify' });
  await reconnect();
  assert.deepEqual(
    got.map((e) => [e.type, 'job' in e ? e.job : '']),
    [
      ['job-error', 'job-1'],
      ['job-error', 'job-2'],
    ],
  );
  for (const e of got) assert.match((e as Extract<ApiEvent, { type: 'job-error' }>).error.message, /no longer knows this job/);
});

test('a failed job is delivered as its job-error; a job whose end came before its id is never asked after', async () => {
  const { client, got } = connected();
  // the end arrives on the socket before the start call answers
  answers['startConversion'] = () => {
    FakeSocket.all[0]!.send({ type: 'job-done', job: 'job-3', kind: 'convert', result: {} as never });
    return 'job-3';
  };
  await client.startConversion('/a.pt', {} as never, null, false);
  answers['startVerify'] = () => 'job-5';
  await client.startVerify({ model: '/m.onnx', data: '/d.npz', checkpoint: '/c.pt' });
  answers['jobStatus'] = () => ({ state: 'error', kind: 'verify', error: { kind: 'io', message: '/m.onnx: no such file' } });
  await reconnect();
  assert.deepEqual(
    calls.filter((c) => c.method === 'jobStatus').map((c) => c.args[0]),
    ['job-5'],
  );
  assert.deepEqual(got.at(-1), { type: 'job-error', job: 'job-5', error: { kind: 'io', message: '/m.onnx: no such file' } });
});
