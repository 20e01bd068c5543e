// Bundles the Node side (CLI, job worker) with esbuild into dist/. The Electron and renderer
// bundles are described in electron.config.ts and built by `npm run build:app`.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies bundled into ESM need a require().
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  external: ['electron', 'onnxruntime-node'],
};

await build({ ...common, entryPoints: { ckpt: 'main/cli/index.ts', worker: 'main/jobs/worker.ts', 'crc-worker': 'main/jobs/crc-worker.ts' }, outdir: 'dist', banner: common.banner });
chmodSync('dist/ckpt.js', 0o755);
