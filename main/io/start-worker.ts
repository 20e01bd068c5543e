import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker script: the bundled `<name>.js` beside the running bundle, or, when running
 * from source under tsx (tests, development), the `.ts` file through a small bootstrap that
 * registers tsx inside the worker first (Node 20 does not carry `--import` hooks into workers).
 */
export function startWorker(name: string, sourceFile: URL, runningFrom: string, options: WorkerOptions = {}): Worker {
  if (!runningFrom.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, runningFrom), options);
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(sourceFile.href)}); })`;
  return new Worker(code, { ...options, eval: true });
}
