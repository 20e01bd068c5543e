#!/usr/bin/env node
// dist/ckpt.js: `ckpt convert FILE` starts its conversion thread (dist/convert-worker.js) first,
// and then loads the CLI (dist/ckpt-cli.js, 1 MB: 60-100 ms of compiling and loading Node's
// modules on the 2-core machine before the thread started); the thread loads its own code
// meanwhile. Everything else is the CLI as it was. Only Node's own modules are imported here.
import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { holdEarlyWorker } from '../io/early-worker.ts';

/** `convert` of one existing file, without the options that run no conversion thread (a dry run, --fit, help). */
function convertsOneFile(args: readonly string[]): boolean {
  if (args[0] !== 'convert') return false;
  const rest = args.slice(1);
  if (rest.some((a) => a === '--dry-run' || a === '--fit' || a.startsWith('--fit=') || a === '--help' || a === '-h' || a === '--shard')) return false;
  return rest.some((a, i) => {
    if (a.startsWith('-') || rest[i - 1] === '-o' || rest[i - 1] === '--output') return false;
    try {
      return statSync(a).isFile();
    } catch {
      return false;
    }
  });
}

if (convertsOneFile(process.argv.slice(2))) holdEarlyWorker('convert-worker', new Worker(new URL('./convert-worker.js', import.meta.url)));
await import(new URL('./ckpt-cli.js', import.meta.url).href);
