// Web mode's token, checked from outside the browser against the real backend: without it the
// page, the API and the event socket are refused with 401; with it they answer.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { buildSkipReason, startServer, type Server } from './helpers.ts';

const skip = buildSkipReason();

/** Sends a WebSocket upgrade request and resolves with the HTTP status the server answered. */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('web mode token', { skip: skip ?? false }, () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('refuses an API call without the token with 401 and a typed error', async () => {
    const res = await fetch(`${server.origin}/api/getWorkspace`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[]' });
    assert.equal(res.status, 401);
    const body = (await res.json()) as { error: { kind: string; message: string } };
    assert.equal(body.error.kind, 'usage');
    assert.match(body.error.message, /token/);
  });

  it('refuses a wrong token, the page and the event socket without it', async () => {
    const wrong = await fetch(`${server.origin}/api/getWorkspace`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer not-the-token' },
      body: '[]',
    });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const page = await fetch(`${server.origin}/`);
    assert.equal(page.status, 401);
    await page.body?.cancel();
    assert.equal(await upgradeStatus(`${server.origin}/api/events`), 401);
  });

  it('answers the same requests with the token', async () => {
    const res = await fetch(`${server.origin}/api/getWorkspace`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` },
      body: '[]',
    });
    assert.equal(res.status, 200);
    const ws = (await res.json()) as { shell: string; sampleFile: string };
    assert.equal(ws.shell, 'web');
    assert.match(ws.sampleFile, /digits-cnn[\\/]dp\.pt$/);
    const first = await fetch(server.url, { redirect: 'manual' });
    assert.equal(first.status, 302);
    assert.match(first.headers.get('set-cookie') ?? '', /HttpOnly/);
    await first.body?.cancel();
    assert.equal(await upgradeStatus(`${server.origin}/api/events`, { Authorization: `Bearer ${server.token}` }), 101);
  });
});
