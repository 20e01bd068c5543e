// `npm run build`: bundles every part of the app into dist/.
//   dist/ckpt.js, dist/worker.js, dist/crc-worker.js, dist/diff-worker.js   the CLI and its worker threads (Node, ESM)
//   dist/convert-worker.js                               the CLI convert's threads (one file or a folder): convert jobs only
//   dist/electron/main.js, dist/electron/preload.cjs   the Electron shell (when main/electron exists)
//   dist/renderer/                                       the Svelte UI (vite, when renderer/vite.config.ts exists)
// The same renderer is served by `ckpt serve` (web mode) and loaded by the Electron window.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync } from 'node:fs';

const node = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies bundled into ESM need a require().
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  external: ['electron', 'onnxruntime-node', '@node-rs/crc32'],
};

const entries = {
  ckpt: 'main/cli/index.ts',
  worker: 'main/jobs/worker.ts',
  'convert-worker': 'main/jobs/convert-worker.ts',
  'crc-worker': 'main/io/crc-worker.ts',
  'diff-worker': 'main/diff/compare-worker.ts',
};
for (const [name, file] of [['verify-worker', 'main/verify/verify-worker.ts']]) if (existsSync(file)) entries[name] = file;
await build({ ...node, entryPoints: entries, outdir: 'dist' });
chmodSync('dist/ckpt.js', 0o755);
// The Python side of `verify --model-class`: run by the user's python from beside the bundle that
// starts it (main/verify/python-runner.ts `runnerScript`).
const RUNNER = 'main/verify/verify-runner.py';
if (existsSync(RUNNER)) copyFileSync(RUNNER, 'dist/verify-runner.py');

if (existsSync('main/electron/main.ts')) {
  // Workers are started from beside the running bundle, so the Electron main gets its own copies
  // (not convert-worker: only the CLI's `convert` starts it; the app's batches run the full worker).
  const { ckpt, 'convert-worker': _cliOnly, ...workers } = entries;
  await build({ ...node, entryPoints: { main: 'main/electron/main.ts', ...workers }, outdir: 'dist/electron' });
  if (existsSync(RUNNER)) copyFileSync(RUNNER, 'dist/electron/verify-runner.py');
  // A sandboxed preload must be one CommonJS script that requires nothing but 'electron'.
  await build({
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    external: ['electron'],
    entryPoints: { preload: 'main/electron/preload.ts' },
    outfile: 'dist/electron/preload.cjs',
  });
}

if (existsSync('renderer/vite.config.ts')) {
  const { build: viteBuild } = await import('vite');
  await viteBuild({ configFile: 'renderer/vite.config.ts', logLevel: 'warn' });
}
