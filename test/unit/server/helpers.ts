import * as http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { ApiEvent } from '../../../shared/api.ts';
import { EVENTS_PATH, parseStartupLine } from '../../../shared/web-transport.ts';
import { tempDir } from '../service/helpers.ts';

export const CLI = fileURLToPath(new URL('../../../dist/ckpt.js', import.meta.url));

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request, the path sent exactly as given (no normalisation by a URL parser). */
export function request(port: number, method: string, path: string, opts: { headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { Host: `127.0.0.1:${port}`, ...opts.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** POST /api/<method> with a bearer token. */
export async function call(
  port: number,
  token: string,
  method: string,
  args: unknown[],
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any }> {
  const r = await request(port, 'POST', `/api/${method}`, {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(args),
  });
  return { status: r.status, json: r.body ? JSON.parse(r.body) : undefined };
}

/** Opens the event socket; resolves with it open, or rejects with the refusal's HTTP status. */
export function openEvents(
  port: number,
  opts: { token?: string; headers?: Record<string, string>; query?: string } = {},
): Promise<{ ws: WebSocket; events: ApiEvent[] }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers['Authorization'] = `Bearer ${opts.token}`;
    const ws = new WebSocket(`ws://127.0.0.1:${port}${EVENTS_PATH}${opts.query ?? ''}`, { headers });
    const events: ApiEvent[] = [];
    ws.on('message', (data) => events.push(JSON.parse(String(data)) as ApiEvent));
    ws.once('open', () => resolve({ ws, events }));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`refused with ${res.statusCode}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.once('error', (e) => reject(e));
  });
}

export async function until<T>(what: string, get: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  token: string;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM, then the exit code */
  stop(): Promise<number | null>;
}

/** `node dist/ckpt.js serve --port 0 --no-open` as a user runs it, with its own config folder. */
export async function startServe(args: string[] = ['--port', '0', '--no-open']): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    env: { ...process.env, XDG_CONFIG_HOME: tempDir('serve-config'), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const line = await until(
    `the startup line (stderr: ${err})`,
    () => (out.includes('\n') ? out.slice(0, out.indexOf('\n')) : child.exitCode !== null ? 'exited' : undefined),
    30_000,
  );
  const parsed = parseStartupLine(line);
  if (!parsed) {
    child.kill('SIGKILL');
    throw new Error(`not a startup line: '${line}' (stderr: ${err})`);
  }
  return {
    child,
    url: parsed.url,
    token: parsed.token,
    port: Number(new URL(parsed.origin).port),
    stdout: () => out,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
