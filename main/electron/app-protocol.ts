/**
 * The window's page comes from `app://ckpt/…`, a privileged scheme served from dist/renderer
 * (a real origin, unlike file://, so the CSP's 'self' means the app's own files and nothing
 * else). Paths are resolved like web mode's static files: nothing outside that folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { protocol } from 'electron';
import { rendererDir } from '../service/app-paths.ts';
import { contentSecurityPolicy } from '../server/security.ts';
import { contentType, resolveStatic } from '../server/static-files.ts';

export const APP_SCHEME = 'app';
export const APP_ORIGIN = `${APP_SCHEME}://ckpt`;
export const INDEX_URL = `${APP_ORIGIN}/index.html`;
/** The page may load only its own files; it talks to Node through the preload, not the network. */
export const APP_CSP = contentSecurityPolicy();

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Checkpoint Workstation</title><h1>UI not built: run npm run build</h1>`;

/** Before `app.ready`. */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } }]);
}

/** After `app.ready`. */
export function serveAppScheme(root: string | null = rendererDir()): void {
  const headers = (type: string): Record<string, string> => ({ 'Content-Type': type, 'Content-Security-Policy': APP_CSP, 'X-Content-Type-Options': 'nosniff' });
  protocol.handle(APP_SCHEME, async (request) => {
    const url = new URL(request.url);
    if (url.origin !== APP_ORIGIN || request.method !== 'GET') return new Response('not found', { status: 404, headers: headers('text/plain') });
    if (!root || !fs.existsSync(path.join(root, 'index.html'))) return new Response(NOT_BUILT, { status: 503, headers: headers('text/html; charset=utf-8') });
    const file = resolveStatic(root, url.pathname);
    if (!file) return new Response('not found', { status: 404, headers: headers('text/plain') });
    return new Response(await fs.promises.readFile(file), { headers: headers(contentType(file)) });
  });
}
