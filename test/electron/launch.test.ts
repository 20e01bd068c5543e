// The desktop app, launched for real with Playwright: the window opens on the sample DP
// checkpoint and shows its DataParallel verdict. Needs the Electron binary (not downloadable in
// an offline install) and a display; without them the test is skipped, saying why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { _electron as electron } from 'playwright-core';

const MAIN = fileURLToPath(new URL('../../dist/electron/main.js', import.meta.url));
const DP = fileURLToPath(new URL('../../build/sample-workspace/digits-cnn/dp.pt', import.meta.url));

/** The Electron executable, or why the test cannot run here. */
function electronOrReason(): { bin: string } | { reason: string } {
  let bin: unknown;
  try {
    bin = createRequire(import.meta.url)('electron');
  } catch {
    return { reason: 'Electron binary not installed (offline install: node_modules/electron has no dist/)' };
  }
  if (typeof bin !== 'string' || !existsSync(bin)) return { reason: `Electron binary missing at ${String(bin)}` };
  if (process.platform === 'linux' && !process.env['DISPLAY'] && !process.env['WAYLAND_DISPLAY'])
    return { reason: 'no display (DISPLAY and WAYLAND_DISPLAY are unset); try xvfb-run' };
  return { bin };
}

const found = electronOrReason();
const skip = 'reason' in found ? found.reason : false;
if (skip) console.log(`# skip: ${skip}`);

test('the window opens on the sample DP checkpoint and shows the DataParallel verdict', { skip, timeout: 120_000 }, async () => {
  assert.ok(existsSync(MAIN), 'dist/electron/main.js is built by npm run build');
  const app = await electron.launch({
    executablePath: (found as { bin: string }).bin,
    args: [MAIN],
    env: { ...process.env, XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'ckpt-electron-')) } as Record<string, string>,
  });
  try {
    const window = await app.firstWindow();
    await window.waitForLoadState('domcontentloaded');
    assert.match(window.url(), /^app:\/\/ckpt\//);
    // The Node side answers through the preload bridge, and nothing else of Node is in the page.
    const bridge = await window.evaluate(async (file) => {
      const ckpt = (
        globalThis as unknown as {
          ckpt: Record<string, (...a: unknown[]) => Promise<{ ok: boolean; value: { layout: { kind: string }; sampleFile: string } }>>;
        }
      ).ckpt;
      const ws = await ckpt['getWorkspace']!();
      const r = await ckpt['inspect']!(file);
      return {
        sampleFile: ws.value.sampleFile,
        kind: r.value.layout.kind,
        node: typeof (globalThis as { process?: unknown }).process,
        require: typeof (globalThis as { require?: unknown }).require,
      };
    }, DP);
    assert.equal(bridge.kind, 'dp');
    assert.ok(bridge.sampleFile.endsWith('digits-cnn/dp.pt'));
    assert.deepEqual([bridge.node, bridge.require], ['undefined', 'undefined']);
    // The UI opens the sample first and shows its verdict.
    await window
      .getByText(/DataParallel/)
      .first()
      .waitFor({ timeout: 60_000 });
    await window
      .getByText(/dp\.pt/)
      .first()
      .waitFor({ timeout: 10_000 });
  } finally {
    await app.close();
  }
});
