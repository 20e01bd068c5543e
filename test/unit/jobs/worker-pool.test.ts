// WorkerPool on its own, with a toy worker script: typed results by kind, progress, typed errors,
// cancellation of queued and running jobs, a crashed worker replaced without losing the pool, and
// how many jobs waiting on the disk one worker may hold.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointError } from '../../../main/errors.ts';
import { WorkerPool } from '../../../main/jobs/pool.ts';
import type { ToyRequest, ToyResults } from './toy-worker.ts';

const pool = new WorkerPool<ToyRequest, ToyResults>(1, {
  name: 'toy-worker',
  source: new URL('./toy-worker.ts', import.meta.url),
  runningFrom: import.meta.url,
});
after(() => pool.close());

test('results come back typed by kind, with the progress the worker reported', async () => {
  const echoed: string = await pool.run({ kind: 'echo', value: 'hello' });
  assert.equal(echoed, 'hello from a worker');
  const seen: number[] = [];
  const counted: number = await pool.run({ kind: 'count', to: 3 }, { onProgress: (p) => seen.push(p.done) });
  assert.equal(counted, 3);
  assert.deepEqual(seen, [1, 2, 3]);
});

test('a job error arrives as a CheckpointError with its kind and one-line message', async () => {
  await assert.rejects(
    pool.run({ kind: 'fail', message: 'bad input: say what to do' }),
    (e: unknown) => e instanceof CheckpointError && e.kind === 'usage' && e.message === 'bad input: say what to do',
  );
});

test('cancelling: a running job sees the shared flag; a queued one never starts', async () => {
  const running = new AbortController();
  const queued = new AbortController();
  const spin = pool.run({ kind: 'spin' }, { signal: running.signal });
  const waiting = pool.run({ kind: 'echo', value: 'never' }, { signal: queued.signal });
  queued.abort();
  await assert.rejects(waiting, (e: unknown) => e instanceof CheckpointError && e.kind === 'cancelled' && /before it started/.test(e.message));
  running.abort();
  await assert.rejects(spin, (e: unknown) => e instanceof CheckpointError && e.kind === 'cancelled' && e.message === 'stopped when told to');
});

test('a worker that dies fails its job with a typed error, and the pool goes on with a new one', async () => {
  await assert.rejects(
    pool.run({ kind: 'crash' }),
    (e: unknown) => e instanceof CheckpointError && e.kind === 'internal' && /stopped \(exit code 3\)/.test(e.message),
  );
  assert.equal(await pool.run({ kind: 'echo', value: 'again' }), 'again from a worker');
});

test('a closed pool refuses new jobs', async () => {
  const closing = new WorkerPool<ToyRequest, ToyResults>(1, {
    name: 'toy-worker',
    source: new URL('./toy-worker.ts', import.meta.url),
    runningFrom: import.meta.url,
  });
  await closing.close();
  await assert.rejects(closing.run({ kind: 'echo', value: 'x' }), (e: unknown) => e instanceof CheckpointError && e.kind === 'cancelled');
});

test('a worker holds at most 2 jobs while one waits on the disk heavy, up to 4 while every waiting one is light', async () => {
  const most = async (light: boolean): Promise<number> => {
    const held = await Promise.all(Array.from({ length: 12 }, () => pool.run({ kind: 'park', light, ms: 150 })));
    return Math.max(...held);
  };
  assert.equal(await most(false), 2, 'one running and one waiting, as before');
  assert.equal(await most(true), 4, 'light jobs: one running and three waiting');
});
