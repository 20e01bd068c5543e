// `npm start`: the desktop app when it can open a window here, else web mode.
//   1. builds (node build/bundle.mjs) when a bundle is missing;
//   2. opens the Electron app when the Electron binary is installed and there is a display
//      (DISPLAY or WAYLAND_DISPLAY on Linux; always on macOS and Windows);
//   3. otherwise runs `ckpt serve` and says why there is no window.
// Either way the app opens the sample workspace (build/sample-workspace/digits-cnn/dp.pt) first.
// `--web` (npm run serve) always takes web mode; other arguments go to `ckpt serve`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);
const args = process.argv.slice(2);
const webOnly = args.includes('--web');
const serveArgs = args.filter((a) => a !== '--web');

const needed = ['dist/ckpt.js', 'dist/worker.js'];
if (existsSync('main/electron/main.ts')) needed.push('dist/electron/main.js', 'dist/electron/preload.cjs');
if (existsSync('renderer/vite.config.ts')) needed.push('dist/renderer/index.html');
const missing = needed.filter((f) => !existsSync(f));
if (missing.length) {
  console.error(`building (missing ${missing.join(', ')})`);
  const r = spawnSync(process.execPath, ['build/bundle.mjs'], { stdio: 'inherit' });
  if (r.status !== 0) {
    if (!existsSync('dist/ckpt.js')) {
      console.error('the build failed; fix it and run npm start again');
      process.exit(r.status ?? 1);
    }
    console.error('the build failed (see above); starting with what was built');
  }
}

/** The Electron executable, or why there is none. */
function electronBinary() {
  try {
    const bin = createRequire(import.meta.url)('electron');
    if (typeof bin === 'string' && existsSync(bin)) return { bin };
    return { why: `the Electron binary is missing (${bin})` };
  } catch {
    return { why: 'Electron binary not installed (offline install: node_modules/electron has no dist/)' };
  }
}

function displayProblem() {
  if (process.platform !== 'linux') return null;
  return process.env.DISPLAY || process.env.WAYLAND_DISPLAY ? null : 'no display (DISPLAY and WAYLAND_DISPLAY are unset)';
}

const electron = webOnly ? { why: 'web mode asked for (--web)' } : electronBinary();
const why = electron.why ?? displayProblem() ?? (existsSync('dist/electron/main.js') ? null : 'dist/electron/main.js was not built');

const run = (cmd, argv) => {
  const child = spawn(cmd, argv, { stdio: 'inherit' });
  // Ctrl+C reaches the child from the terminal; wait for it to close down. Pass on a kill.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
};

if (!why) {
  console.error('opening the desktop app on the sample workspace');
  run(electron.bin, ['dist/electron/main.js']);
} else {
  console.error(`not opening a window: ${why}; starting web mode on the sample workspace instead`);
  run(process.execPath, ['dist/ckpt.js', 'serve', ...serveArgs]);
}
