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

/**
 * Which Host headers name this server. A browser that reaches it through a tunnel
 * (`ssh -L 8888:127.0.0.1:7860`, VS Code's port forwarding) writes the tunnel's local port, so a
 * server bound to loopback accepts the loopback names on any port: a DNS-rebinding page still
 * sends its own name, which is refused. `allow` adds names a reverse proxy sends (`name` on any
 * port, or `name:port`).
 */
export interface HostPolicy {
  /** accepted `name:port` values */
  exact: Set<string>;
  /** names accepted with any port (or none) */
  anyPort: Set<string>;
}

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

const bracketed = (n: string): string => {
  const bare = n.replace(/^\[|\]$/g, '');
  return net.isIPv6(bare) ? `[${bare}]` : bare.toLowerCase();
};

/** `name[:port]` of a Host header, or null when it is not one. */
export function splitHost(host: string): { name: string; port: string | null } | null {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(host);
  return m ? { name: m[1]!.toLowerCase(), port: m[2] ?? null } : null;
}

export function allowedHosts(bindHost: string, port: number, allow: readonly string[] = []): HostPolicy {
  const policy: HostPolicy = { exact: new Set(), anyPort: new Set() };
  if (isLoopback(bindHost)) for (const n of LOOPBACK_NAMES) policy.anyPort.add(n);
  else {
    const named = isWildcard(bindHost) ? [os.hostname(), ...Object.values(os.networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address))] : [bindHost];
    for (const n of [...LOOPBACK_NAMES, ...named]) policy.exact.add(`${bracketed(n)}:${port}`);
  }
  for (const a of allow) {
    const h = splitHost(a.trim());
    if (!h) continue;
    if (h.port) policy.exact.add(`${bracketed(h.name)}:${Number(h.port)}`);
    else policy.anyPort.add(bracketed(h.name));
  }
  return policy;
}

export function hostAllowed(policy: HostPolicy, host: string): boolean {
  const h = splitHost(host);
  if (!h) return false;
  return policy.anyPort.has(h.name) || (h.port !== null && policy.exact.has(`${h.name}:${Number(h.port)}`));
}

export type Verdict = { ok: true } | { ok: false; status: 401 | 403; message: string };

export function checkRequest(req: IncomingMessage, token: string, hosts: HostPolicy, url: URL): Verdict {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!hostAllowed(hosts, host))
    return { ok: false, status: 403, message: `refused: Host '${host.slice(0, 100)}' is not this server (serve it under that name with --allow-host NAME)` };
  const origin = req.headers.origin;
  // A reverse proxy in front may speak https; the origin must still be the host it came through.
  if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`)
    return { ok: false, status: 403, message: `refused: requests from ${origin.slice(0, 100)} are not allowed` };
  if (!hasToken(req, token, host, url)) return { ok: false, status: 401, message: 'this server needs its token: open the URL that `ckpt serve` printed' };
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

/**
 * The cookie's name for the address the browser used. Browsers keep cookies per host name, not
 * per port, so two servers (or two tunnels) on one name would overwrite each other's cookie;
 * the port in the name keeps them apart, as Jupyter does (`username-localhost-8888`).
 */
export function tokenCookieName(host: string): string {
  const port = splitHost(host)?.port;
  return port ? `${TOKEN_COOKIE}_${Number(port)}` : TOKEN_COOKIE;
}

function hasToken(req: IncomingMessage, token: string, host: string, url: URL): boolean {
  const auth = req.headers.authorization;
  const bearer = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length).trim() : undefined;
  return (
    same(bearer, token) || same(cookieValue(req.headers.cookie, tokenCookieName(host)), token) || same(url.searchParams.get(TOKEN_QUERY) ?? undefined, token)
  );
}

/** The cookie that carries the token after the first page load, named for `host`'s port. */
export function tokenCookie(token: string, host: string): string {
  return `${tokenCookieName(host)}=${token}; HttpOnly; SameSite=Strict; Path=/`;
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
    'Content-Security-Policy': contentSecurityPolicy([`ws://${host}`, `wss://${host}`]),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
}
