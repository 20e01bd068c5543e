// The built Electron bundles (npm run build) are laid out the way the app loads them: the
// preload beside main.js, and the worker scripts that the app's jobs start, which the worker
// pool looks up beside the running bundle (main/io/start-worker.ts: `./<name>.js`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundles } from '../../../electron.config.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

test('main.js and preload.cjs are where electron.config.ts and the window expect them', () => {
  assert.ok(existsSync(REPO + bundles.main));
  assert.ok(existsSync(REPO + bundles.preload));
  assert.match(readFileSync(REPO + bundles.main, 'utf8'), /preload\.cjs/);
});

test('the worker scripts are beside dist/electron/main.js, where its worker pool starts them', () => {
  const missing = ['worker', 'crc-worker'].filter((name) => !existsSync(`${REPO}dist/electron/${name}.js`));
  assert.deepEqual(
    missing,
    [],
    `dist/electron/ lacks ${missing.map((m) => m + '.js').join(', ')}: build/bundle.mjs must add main/jobs/worker.ts and main/io/crc-worker.ts to the Electron main build's entryPoints, or every job in the desktop app fails`,
  );
});
