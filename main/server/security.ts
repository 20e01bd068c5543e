/**
 * Who may talk to the web-mode server. Everything it serves can read and write the user's files,
 * so each request must (1) name this server in its Host header (DNS rebinding), (2) come from
 * its own origin when a browser says where it comes from (cross-site requests and sockets), and
 * (3) carry the session token: a `?token=` on the first page load, then the HttpOnly cookie
 * set from it, or an `Authorization: Bearer` header.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { TOKEN_COOKIE, TOKEN_QUERY } from '../../shared/web-transport.ts';

/** 256 random bits, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (net.isIPv4(h) && h.startsWith('127.'));
}

const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '[::]';

/** `host:port` values a request's Host header may have for a server bound to `bindHost`. */
export function allowedHosts(bindHost: string, port: number): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  if (!isLoopback(bindHost)) {
    const named = isWildcard(bindHost) ? [os.hostname(), ...Object.values(os.networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address))] : [bindHost];
    for (const n of named) names.add(net.isIPv6(n.replace(/^\[|\]$/g, '')) ? `[${n.replace(/^\[|\]$/g, '')}]` : n);
  }
  return new Set([...names].map((n) => `${n.toLowerCase()}:${port}`));
}

export type Verdict = { ok: true } | { ok: false; status: 401 | 403; message: string };

export function checkRequest(req: IncomingMessage, token: string, hosts: Set<string>, url: URL): Verdict {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!hosts.has(host)) return { ok: false, status: 403, message: `refused: Host '${host.slice(0, 100)}' is not this server` };
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`) return { ok: false, status: 403, message: `refused: requests from ${origin.slice(0, 100)} are not allowed` };
  if (!hasToken(req, token, url)) return { ok: false, status: 401, message: 'this server needs its token: open the URL that `ckpt serve` printed' };
  return { ok: true };
}

function same(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function hasToken(req: IncomingMessage, token: string, url: URL): boolean {
  const auth = req.headers.authorization;
  const bearer = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length).trim() : undefined;
  return same(bearer, token) || same(cookieValue(req.headers.cookie, TOKEN_COOKIE), token) || same(url.searchParams.get(TOKEN_QUERY) ?? undefined, token);
}

/** The cookie that carries the token after the first page load. */
export function tokenCookie(token: string): string {
  return `${TOKEN_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

/** The page's policy: its own scripts and styles, data/blob images, and its own event socket. */
export function contentSecurityPolicy(connect: string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    `connect-src ${["'self'", ...connect].join(' ')}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers on every response. */
export function baseHeaders(host: string): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy([`ws://${host}`]),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
}
