/**
 * Where the app's own files are, wherever it runs from: a dev checkout (main/service/*.ts under
 * tsx), the bundles (dist/ckpt.js, dist/electron/main.js) or a packaged Electron app (the
 * sample workspace in `process.resourcesPath`, the bundles inside app.asar).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The first `<ancestor>/<relative>` that exists, from `start` upwards (a few levels). */
export function findUp(start: string, relative: string, levels = 5): string | null {
  let dir = start;
  for (let i = 0; i <= levels; i++) {
    const p = path.join(dir, relative);
    if (fs.existsSync(p)) return p;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

/** The file the app opens first, relative to the sample workspace. */
export const SAMPLE_FILE = 'digits-cnn/dp.pt';

/** The bundled sample workspace (`build/sample-workspace`, or `sample-workspace` in a packaged app's resources). */
export function sampleWorkspaceDir(): string {
  const resources = (process as { resourcesPath?: string }).resourcesPath;
  const candidates = [
    resources ? path.join(resources, 'sample-workspace') : null,
    findUp(here, 'build/sample-workspace'),
    findUp(process.cwd(), 'build/sample-workspace', 0),
  ];
  for (const c of candidates) if (c && fs.existsSync(path.join(c, SAMPLE_FILE))) return c;
  // Nothing found: name the place a checkout has it, so the message that follows is useful.
  return path.resolve(here, '../../build/sample-workspace');
}

/** The built UI (`dist/renderer`), or null when it has not been built. */
export function rendererDir(): string | null {
  const d = findUp(here, 'dist/renderer') ?? findUp(process.cwd(), 'dist/renderer', 0);
  return d && fs.existsSync(d) ? d : null;
}

/** `$XDG_CONFIG_HOME/checkpoint-workstation`, else `~/.config/checkpoint-workstation` (Electron passes its userData). */
export function defaultConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] && path.isAbsolute(env['XDG_CONFIG_HOME']) ? env['XDG_CONFIG_HOME'] : path.join(os.homedir(), '.config');
  return path.join(base, 'checkpoint-workstation');
}
