/**
 * The desktop app's build configuration.
 *
 * `bundles`: what build/bundle.mjs writes and the app loads (the Electron main process, its
 * sandboxed preload, the UI). The default export is electron-builder's configuration, used by
 * `npm run dist` (`electron-builder --config electron.config.ts`, which loads TypeScript itself).
 * Offline packaging: set ELECTRON_DIST to an unpacked Electron (the folder with the `electron`
 * executable) and electron-builder uses it instead of downloading one.
 */
import type { Configuration } from 'electron-builder';

export const bundles = {
  main: 'dist/electron/main.js',
  preload: 'dist/electron/preload.cjs',
  renderer: 'dist/renderer/index.html',
  /** the CLI and its worker threads, which the app's jobs run in */
  cli: 'dist/ckpt.js',
} as const;

export const productName = 'Checkpoint Workstation';

const electronDist = process.env['ELECTRON_DIST'];

const config: Configuration = {
  appId: 'dev.checkpoint-workstation.app',
  productName,
  copyright: 'MIT License',
  directories: { output: 'release', buildResources: 'build' },
  // The bundles carry the app's code; node_modules adds only the production dependencies.
  files: ['dist/**', '!dist/**/*.map', 'package.json'],
  extraMetadata: { main: bundles.main },
  extraResources: [{ from: 'build/sample-workspace', to: 'sample-workspace' }],
  // Native bindings (onnxruntime, @node-rs/crc32's) are loaded from real files; verify-runner.py is
  // run by the user's python, which cannot read inside the asar archive.
  asarUnpack: ['node_modules/onnxruntime-node/**', 'node_modules/@node-rs/**', 'dist/**/verify-runner.py'],
  icon: 'build/icons/icon.png',
  linux: {
    target: ['AppImage', 'deb'],
    category: 'Development',
    executableName: 'checkpoint-workstation',
    maintainer: 'Checkpoint Workstation <checkpoint-workstation@users.noreply.github.com>',
    synopsis: 'Inspect and convert PyTorch checkpoints without Python',
  },
  mac: { target: ['dmg'], category: 'public.app-category.developer-tools' },
  win: { target: ['nsis'] },
  nsis: { oneClick: false, allowToChangeInstallationDirectory: true },
  ...(electronDist ? { electronDist } : {}),
};

export default config;
