/**
 * The built UI (dist/renderer) as static files. A request names a file under that folder and
 * nothing else: the decoded path is resolved and must stay inside the folder, symbolic links
 * included; anything else is a 404.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

export const contentType = (file: string): string => TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';

/**
 * The file under `root` a URL path names (`/` is index.html), or null when it names nothing
 * there: a missing file, a folder, an escape by `..` (raw or percent-encoded), a NUL or a
 * backslash, or a link that leads outside.
 */
export function resolveStatic(root: string, urlPath: string): string | null {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (!rel.startsWith('/') || rel.includes('\0') || rel.includes('\\')) return null;
  if (rel.endsWith('/')) rel += 'index.html';
  const segments = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return null;
  let realRoot: string;
  let file: string;
  try {
    realRoot = fs.realpathSync(root);
    file = fs.realpathSync(path.join(realRoot, ...segments));
  } catch {
    return null;
  }
  if (!file.startsWith(realRoot + path.sep)) return null;
  try {
    return fs.statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}
