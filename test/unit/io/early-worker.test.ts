// A thread started before its user has loaded (cli/launch.ts) is handed to the first
// `takeEarlyWorker` of its script with every event it had before anyone listened, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { dropEarlyWorker, earlyWorkerWaiting, holdEarlyWorker, takeEarlyWorker } from '../../../main/io/early-worker.ts';

const SAYS_LOADED =
  "const { parentPort } = require('node:worker_threads'); parentPort.postMessage({ type: 'loaded' }); parentPort.postMessage({ type: 'second' }); parentPort.on('message', (m) => parentPort.postMessage({ echo: m }));";

test('a worker held before its events are listened to gives them again, in order, to who takes it', async () => {
  const worker = new Worker(SAYS_LOADED, { eval: true });
  holdEarlyWorker('convert-worker', worker);
  assert.equal(earlyWorkerWaiting(), true);
  // its first messages arrive while no one has taken it
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(takeEarlyWorker('worker'), undefined, 'another script’s start does not take it');
  const taken = takeEarlyWorker('convert-worker');
  assert.equal(taken, worker);
  assert.equal(earlyWorkerWaiting(), false);
  assert.equal(takeEarlyWorker('convert-worker'), undefined, 'taken once');
  const events: unknown[] = [];
  taken.once('online', () => events.push('online'));
  taken.on('message', (m: unknown) => events.push(m));
  taken.postMessage('job');
  while (events.length < 4) await once(taken, 'message');
  assert.deepEqual(events, ['online', { type: 'loaded' }, { type: 'second' }, { echo: 'job' }]);
  await taken.terminate();
});

test('a worker no one takes is ended, and one that ended before it was taken is not handed over', async () => {
  // a held worker does not keep the process alive (it is unref'd): a timer does, while the test waits on it
  const alive = setInterval(() => undefined, 1000);
  const unused = new Worker(SAYS_LOADED, { eval: true });
  holdEarlyWorker('convert-worker', unused);
  const exited = once(unused, 'exit');
  dropEarlyWorker();
  await exited;
  assert.equal(earlyWorkerWaiting(), false);
  const failing = new Worker("throw new Error('broken script')", { eval: true });
  holdEarlyWorker('convert-worker', failing);
  // (events.once would reject on the 'error' that comes first)
  await new Promise((resolve) => failing.once('exit', resolve));
  assert.equal(earlyWorkerWaiting(), false);
  assert.equal(takeEarlyWorker('convert-worker'), undefined);
  clearInterval(alive);
});
