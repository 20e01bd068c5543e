// What a web-mode request may cost (issue 16): a refused request's body is not read, an accepted
// call's body must arrive in time, two Host headers are refused, and `?token=` opens the page
// but authenticates no API call.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createApiService } from '../../../main/service/service.ts';
import { REQUEST_LIMITS } from '../../../main/server/request-limits.ts';
import { startWebServer, type WebServer } from '../../../main/server/web-server.ts';
import { tempDir } from '../service/helpers.ts';
import { call, request } from './helpers.ts';

let server: WebServer;
before(async () => {
  server = await startWebServer({ port: 0, rendererDir: tempDir('ui-none'), service: createApiService({ shell: 'web', configDir: tempDir('limits-config') }) });
});
after(async () => {
  await server.close();
  await server.service.close();
});

/** Sends raw bytes on a new connection; resolves with what came back and when the server closed it. */
function raw(head: string, opts: { trickle?: boolean; keepSending?: boolean } = {}): Promise<{ reply: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(server.port, '127.0.0.1');
    let reply = '';
    let timer: ReturnType<typeof setInterval> | undefined;
    sock.setEncoding('utf8').on('data', (s: string) => (reply += s));
    sock.on('connect', () => {
      sock.write(head);
      if (opts.keepSending || opts.trickle) timer = setInterval(() => sock.write(opts.trickle ? ' ' : 'x'.repeat(65536)), opts.trickle ? 50 : 5);
    });
    const done = (closed: boolean): void => {
      clearInterval(timer);
      sock.destroy();
      resolve({ reply, closed });
    };
    sock.on('close', () => done(true));
    sock.on('error', () => done(true));
    setTimeout(() => done(false), 5000);
  });
}

test('a request refused with 401 is answered and its connection closed: the body is not read to its end', async () => {
  const r = await raw(
    `POST /api/getWorkspace HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n`,
    { keepSending: true },
  );
  assert.match(r.reply, /^HTTP\/1\.1 401 /);
  assert.ok(r.closed, 'the server closed the connection instead of draining 1 GiB');
});

test('an authenticated call whose body trickles in is answered 408 and closed', async () => {
  const saved = REQUEST_LIMITS.bodyTimeMs;
  REQUEST_LIMITS.bodyTimeMs = 300;
  try {
    const r = await raw(
      `POST /api/getWorkspace HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${server.token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[`,
      { trickle: true },
    );
    assert.match(r.reply, /^HTTP\/1\.1 408 /);
    assert.match(r.reply, /did not arrive within 0\.3 s/);
    assert.ok(r.closed);
  } finally {
    REQUEST_LIMITS.bodyTimeMs = saved;
  }
});

test('two Host headers are refused, even when both name this server', async () => {
  const host = `Host: 127.0.0.1:${server.port}\r\n`;
  const r = await raw(`GET / HTTP/1.1\r\n${host}${host}Authorization: Bearer ${server.token}\r\n\r\n`);
  assert.match(r.reply, /^HTTP\/1\.1 400 /);
  assert.match(r.reply, /more than one Host header/);
});

test('?token= opens the page, but an API call with only ?token= is refused', async () => {
  const page = await request(server.port, 'GET', `/?token=${server.token}`);
  assert.equal(page.status, 302, 'the page takes the token and sets the cookie');
  const api = await request(server.port, 'POST', `/api/getWorkspace?token=${server.token}`, { headers: { 'Content-Type': 'application/json' }, body: '[]' });
  assert.equal(api.status, 401);
  assert.equal((await call(server.port, server.token, 'getWorkspace', [])).status, 200, 'the bearer header still works');
});
