// electron.config.ts as electron-builder itself reads it (its own loader and schema check, no
// download): targets, files, resources, icons, and ELECTRON_DIST for offline packaging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { bundles } from '../../../electron.config.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** Loads and validates the configuration in a child, as `electron-builder --config electron.config.ts` does. */
function loadWithElectronBuilder(env: Record<string, string> = {}): Record<string, any> {
  const script = `
    const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config');
    const { DebugLogger } = require('builder-util');
    getConfig(process.cwd(), 'electron.config.ts', null)
      .then(async (c) => { await validateConfiguration(c, new DebugLogger(false)); process.stdout.write('\\n' + JSON.stringify(c)); })
      .catch((e) => { console.error(e.message); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\n') + 1));
}

test('electron-builder loads and validates the configuration', () => {
  const c = loadWithElectronBuilder({ ELECTRON_DIST: '' });
  assert.equal(c['productName'], 'Checkpoint Workstation');
  assert.match(c['appId'], /^[a-z0-9.-]+$/);
  assert.deepEqual(c['linux'].target, ['AppImage', 'deb']);
  assert.deepEqual(c['mac'].target, ['dmg']);
  assert.deepEqual(c['win'].target, ['nsis']);
  assert.deepEqual(c['files'], [{ filter: ['dist/**', '!dist/**/*.map', 'package.json'] }]);
  assert.deepEqual(c['extraResources'], [{ from: 'build/sample-workspace', to: 'sample-workspace' }]);
  assert.deepEqual(
    c['asarUnpack'],
    ['node_modules/onnxruntime-node/**', 'node_modules/@node-rs/**', 'dist/**/verify-runner.py'],
    "native bindings load from outside the asar, and the python runner stays outside it so the user's python can read it",
  );
  assert.equal(c['extraMetadata'].main, bundles.main);
  assert.equal(c['electronDist'], undefined);
});

test('ELECTRON_DIST points electron-builder at a local Electron', () => {
  assert.equal(loadWithElectronBuilder({ ELECTRON_DIST: '/opt/electron' })['electronDist'], '/opt/electron');
});

test('the icon is a 512×512 PNG and the sample workspace it ships exists', () => {
  const png = PNG.sync.read(readFileSync(new URL('../../../build/icons/icon.png', import.meta.url)));
  assert.deepEqual([png.width, png.height], [512, 512]);
  assert.ok(existsSync(new URL('../../../build/sample-workspace/digits-cnn/dp.pt', import.meta.url)));
});
