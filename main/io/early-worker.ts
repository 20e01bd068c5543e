import type { Worker } from 'node:worker_threads';

// A worker thread started before the code that uses it has loaded (cli/launch.ts starts the
// conversion's thread while the CLI's bundle loads) and handed to the first `startWorker` of its
// script. Its first events (online, its 'loaded' message) may come before anyone listens: they
// are kept and given again to the listeners of whoever takes it.

interface EarlyWorker {
  name: string;
  worker: Worker;
  events: { name: 'online' | 'message'; value?: unknown }[];
  /** it failed or ended before it was taken: not handed over */
  gone: boolean;
  /** the listeners that keep its events until it is taken */
  online(): void;
  message(value: unknown): void;
  ended(): void;
}

const EARLY = Symbol.for('ckpt.earlyWorker');
const held = globalThis as { [EARLY]?: EarlyWorker };

/** Keeps `worker` (started from `name`.js) for `takeEarlyWorker`; it does not keep the process alive until taken. */
export function holdEarlyWorker(name: string, worker: Worker): void {
  const early: EarlyWorker = {
    name,
    worker,
    events: [],
    gone: false,
    online: () => void early.events.push({ name: 'online' }),
    message: (value: unknown) => void early.events.push({ name: 'message', value }),
    ended: () => void (early.gone = true),
  };
  worker.unref();
  worker.on('online', early.online).on('message', early.message).on('error', early.ended).on('exit', early.ended);
  held[EARLY] = early;
}

/** Whether a worker started early waits to be taken (the CLI then leaves V8's flags to the pool that takes it: cli/v8-tuning.ts). */
export const earlyWorkerWaiting = (): boolean => held[EARLY] !== undefined && !held[EARLY].gone;

/**
 * The worker of script `name` started early, if one waits: the caller attaches its listeners at
 * once (in the same turn), and the events it missed are emitted again after that turn.
 */
export function takeEarlyWorker(name: string): Worker | undefined {
  const early = held[EARLY];
  if (!early || early.name !== name) return undefined;
  delete held[EARLY];
  const { worker, events } = early;
  worker.off('online', early.online).off('message', early.message).off('error', early.ended).off('exit', early.ended);
  if (early.gone) {
    void worker.terminate();
    return undefined;
  }
  worker.ref();
  queueMicrotask(() => {
    for (const e of events) worker.emit(e.name, e.value);
  });
  return worker;
}

/** Ends a worker started early that no one took (a dry run, a folder, an error before the pool). */
export function dropEarlyWorker(): void {
  const early = held[EARLY];
  if (!early) return;
  delete held[EARLY];
  void early.worker.terminate();
}
