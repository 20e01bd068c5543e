/**
 * Web mode: one HTTP server for the built UI (dist/renderer), the API (`POST /api/<method>`) and
 * its event socket (`/api/events`), guarded by a session token (see security.ts). It binds to
 * 127.0.0.1 unless told otherwise; reach it from another machine through an SSH tunnel.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { API_PREFIX, EVENTS_PATH, TOKEN_QUERY } from '../../shared/web-transport.ts';
import { rendererDir } from '../service/app-paths.ts';
import { createApiService, type ApiService } from '../service/service.ts';
import { handleApi, sendError } from './api-route.ts';
import { EventSockets } from './event-socket.ts';
import { allowedHosts, baseHeaders, type HostPolicy, checkRequest, contentSecurityPolicy, newToken, tokenCookie } from './security.ts';
import { closeAfterAnswer, hostHeaderCount, withoutApiToken } from './request-limits.ts';
import { contentType, resolveStatic } from './static-files.ts';

export interface WebServerOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** 0 picks a free port */
  port: number;
  /** default: a new service in web mode, closed with the server */
  service?: ApiService;
  /** the built UI; default dist/renderer beside the app */
  rendererDir?: string;
  /** default: a new random token */
  token?: string;
  /** more Host names to accept (a reverse proxy's): `name` on any port, or `name:port` */
  allowHosts?: readonly string[];
}

export interface WebServer {
  /** the URL to open: `http://127.0.0.1:PORT/?token=TOKEN` */
  url: string;
  origin: string;
  host: string;
  port: number;
  token: string;
  service: ApiService;
  close(): Promise<void>;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Checkpoint Workstation</title>
<h1>UI not built: run npm run build</h1>
<p>The server is running, but dist/renderer/index.html is missing.</p>`;

export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const bindHost = opts.host ?? '127.0.0.1';
  const token = opts.token ?? newToken();
  const ownService = !opts.service;
  const service = opts.service ?? createApiService({ shell: 'web' });
  const sockets = new EventSockets(service);
  let hosts: HostPolicy = { exact: new Set(), anyPort: new Set() };

  const refuse = (res: http.ServerResponse, status: number, message: string, api: boolean): void => {
    const headers = { 'Content-Security-Policy': contentSecurityPolicy(), 'X-Content-Type-Options': 'nosniff' };
    if (api) return sendError(res, status, { kind: 'usage', message }, headers);
    res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(message + '\n');
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return refuse(res, 400, 'bad request', false);
    }
    const api = url.pathname.startsWith(API_PREFIX);
    if (hostHeaderCount(req) > 1) {
      closeAfterAnswer(req, res);
      return refuse(res, 400, 'refused: the request has more than one Host header', api);
    }
    const verdict = checkRequest(req, token, hosts, withoutApiToken(url, api));
    if (!verdict.ok) {
      closeAfterAnswer(req, res);
      return refuse(res, verdict.status, verdict.message, api);
    }
    const host = req.headers.host!.toLowerCase();
    const headers = baseHeaders(host);

    // The first page load carries the token in the URL: keep it in a cookie, take it out of the address bar.
    if (url.searchParams.has(TOKEN_QUERY) && !api && (req.method === 'GET' || req.method === 'HEAD')) {
      url.searchParams.delete(TOKEN_QUERY);
      res.writeHead(302, { ...headers, 'Set-Cookie': tokenCookie(token, host), Location: url.pathname + url.search, 'Cache-Control': 'no-store' });
      return void res.end();
    }
    if (url.pathname === EVENTS_PATH) return refuse(res, 426, `${EVENTS_PATH} is a WebSocket`, true);
    if (api) return handleApi(service, req, res, url.pathname, headers);

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return refuse(res, 405, 'only GET and HEAD here', false);
    }
    const root = opts.rendererDir ?? rendererDir();
    if (!root || !fs.existsSync(path.join(root, 'index.html'))) {
      if (url.pathname !== '/' && url.pathname !== '/index.html') return refuse(res, 404, 'not found', false);
      res.writeHead(503, { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      return void res.end(NOT_BUILT);
    }
    const file = resolveStatic(root, url.pathname);
    if (!file) return refuse(res, 404, 'not found', false);
    const body = await fs.promises.readFile(file);
    res.writeHead(200, { ...headers, 'Content-Type': contentType(file), 'Content-Length': body.length, 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) refuse(res, 500, 'internal error', false);
      else res.destroy();
    });
  });

  server.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
    const deny = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return deny(400, 'Bad Request');
    }
    if (url.pathname !== EVENTS_PATH) return deny(404, 'Not Found');
    if (hostHeaderCount(req) > 1) return deny(400, 'Bad Request');
    // the socket is an API call too: it authenticates by cookie or bearer header, never by `?token=`
    const verdict = checkRequest(req, token, hosts, withoutApiToken(url, true));
    if (!verdict.ok) return deny(verdict.status, verdict.status === 401 ? 'Unauthorized' : 'Forbidden');
    sockets.upgrade(req, socket, head);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (e: unknown) => {
    sockets.close();
    if (ownService) await service.close();
    throw e;
  });
  const port = (server.address() as AddressInfo).port;
  hosts = allowedHosts(bindHost, port, opts.allowHosts);
  // A wildcard bind is reached locally as 127.0.0.1; IPv6 literals go in brackets.
  const shown = bindHost === '0.0.0.0' || bindHost === '::' ? '127.0.0.1' : bindHost.includes(':') ? `[${bindHost}]` : bindHost;
  const origin = `http://${shown}:${port}`;

  let closing: Promise<void> | null = null;
  return {
    url: `${origin}/?${TOKEN_QUERY}=${token}`,
    origin,
    host: bindHost,
    port,
    token,
    service,
    close: () =>
      (closing ??= (async () => {
        sockets.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        if (ownService) await service.close();
      })()),
  };
}
