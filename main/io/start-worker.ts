import { Worker, type WorkerOptions } from 'node:worker_threads';
import { takeEarlyWorker } from './early-worker.ts';

/**
 * Starts a worker script: the bundled `<name>.js` beside the running bundle, or, when running
 * from source under tsx (tests, development), the `.ts` file through a small bootstrap that
 * registers tsx inside the worker first (Node 20 does not carry `--import` hooks into workers).
 * The bundled script's thread may have been started already (io/early-worker.ts): it is taken.
 */
export function startWorker(name: string, sourceFile: URL, runningFrom: string, options: WorkerOptions = {}): Worker {
  if (!runningFrom.endsWith('.ts'))
    return (Object.keys(options).length ? undefined : takeEarlyWorker(name)) ?? new Worker(new URL(`./${name}.js`, runningFrom), options);
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(sourceFile.href)}); })`;
  return new Worker(code, { ...options, eval: true });
}
