// A worker script for WorkerPool's own tests: tiny jobs that exercise the protocol without any
// checkpoint work (results, progress, typed errors, cancellation, a crash, jobs waiting on disk).
import { parentPort } from 'node:worker_threads';
import type { WorkerMessage } from '../../../main/jobs/protocol.ts';

export type ToyRequest =
  | { kind: 'echo'; value: string }
  | { kind: 'count'; to: number }
  | { kind: 'fail'; message: string }
  | { kind: 'spin' }
  | { kind: 'crash' }
  /** says it waits on the disk (light or not), then finishes after `ms`; its result: how many jobs this thread held at once */
  | { kind: 'park'; light: boolean; ms: number };

export interface ToyResults {
  echo: string;
  count: number;
  fail: never;
  spin: never;
  crash: never;
  park: number;
}

/** jobs of kind 'park' this thread holds now */
let parked = 0;

const port = parentPort!;
port.on('message', (msg: { seq: number; request: ToyRequest; cancel: Int32Array }) => {
  const { seq, request, cancel } = msg;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  switch (request.kind) {
    case 'echo':
      return post({ seq, type: 'done', result: `${request.value} from a worker` });
    case 'count':
      for (let i = 1; i <= request.to; i++) post({ seq, type: 'progress', progress: { done: i, total: request.to, unit: 'tensors' } });
      return post({ seq, type: 'done', result: request.to });
    case 'fail':
      return post({ seq, type: 'error', error: { kind: 'usage', message: request.message } });
    case 'spin': {
      const started = Date.now();
      while (Atomics.load(cancel, 0) === 0 && Date.now() - started < 10_000);
      return post({ seq, type: 'error', error: { kind: 'cancelled', message: 'stopped when told to' } });
    }
    case 'park': {
      parked++;
      const held = parked;
      post({ seq, type: 'waiting', light: request.light });
      setTimeout(() => {
        parked--;
        post({ seq, type: 'done', result: held });
      }, request.ms);
      return;
    }
    case 'crash':
      process.exit(3);
  }
});
