// `ckpt serve` as a user (or the e2e tests) runs it: the built CLI in a child process on a free
// port, spoken to over real HTTP and WebSocket connections. Auth, Host and Origin checks, the
// API on the sample workspace, a conversion job pushed over the socket, cancelling, path
// traversal, bad requests, and a clean stop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ApiEvent } from '../../../shared/api.ts';
import { STARTUP_PREFIX, TOKEN_COOKIE } from '../../../shared/web-transport.ts';
import { bigSafetensors, CPU_RULES, DP, tempDir } from '../service/helpers.ts';
import { call, openEvents, request, startServe, until, type ServeProcess } from './helpers.ts';

let s: ServeProcess;
before(async () => {
  s = await startServe();
});
after(async () => {
  await s?.stop();
});

describe('the startup line', () => {
  test('is the only line on stdout: the loopback URL with a 256-bit token', async () => {
    assert.equal(s.stdout(), `${STARTUP_PREFIX}http://127.0.0.1:${s.port}/?token=${s.token}\n`);
    assert.match(s.token, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(s.port > 0);
    // stderr is a separate pipe: its line may arrive after the startup line
    for (let i = 0; i < 100 && !/not opening a browser/.test(s.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(s.stderr(), /not opening a browser \(--no-open\)/);
  });
});

describe('without the token', () => {
  test('the page, the API and the event socket answer 401', async () => {
    assert.equal((await request(s.port, 'GET', '/')).status, 401);
    assert.equal((await request(s.port, 'GET', '/?token=wrong')).status, 401);
    const api = await request(s.port, 'POST', '/api/inspect', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify([DP]) });
    assert.equal(api.status, 401);
    assert.equal(JSON.parse(api.body).error.kind, 'usage');
    assert.equal((await call(s.port, 'not-the-token', 'inspect', [DP])).status, 401);
    assert.equal(
      (await request(s.port, 'POST', '/api/inspect', { headers: { Cookie: `${TOKEN_COOKIE}_${s.port}=nope`, 'Content-Type': 'application/json' }, body: '[]' }))
        .status,
      401,
    );
    // the right token under another port's cookie name is another server's cookie
    assert.equal(
      (
        await request(s.port, 'POST', '/api/getWorkspace', {
          headers: { Cookie: `${TOKEN_COOKIE}_${s.port + 1}=${s.token}; ${TOKEN_COOKIE}=${s.token}`, 'Content-Type': 'application/json' },
          body: '[]',
        })
      ).status,
      401,
    );
    await assert.rejects(openEvents(s.port), { status: 401 });
    await assert.rejects(openEvents(s.port, { token: 'nope' }), { status: 401 });
  });
});

describe('Host and Origin', () => {
  test('a request naming another host is refused (DNS rebinding), even with the token', async () => {
    for (const host of [`evil.example:${s.port}`, `localhost.evil.example:${s.port}`, `10.0.0.1:${s.port}`, `127.0.0.2:${s.port}`]) {
      const r = await call(s.port, s.token, 'getWorkspace', [], { Host: host });
      assert.equal(r.status, 403, host);
      assert.match(r.json.error.message, /is not this server/);
    }
    assert.equal((await request(s.port, 'GET', `/?token=${s.token}`, { headers: { Host: `rebind.example:${s.port}` } })).status, 403);
    await assert.rejects(openEvents(s.port, { token: s.token, headers: { Host: `evil.example:${s.port}` } }), { status: 403 });
    assert.equal((await call(s.port, s.token, 'getWorkspace', [], { Host: `localhost:${s.port}` })).status, 200);
  });

  test('the loopback names are accepted on any port: the local end of an SSH tunnel', async () => {
    for (const host of [`127.0.0.1:${s.port + 1}`, 'localhost:8888', '[::1]:9000', '127.0.0.1']) {
      assert.equal((await call(s.port, s.token, 'getWorkspace', [], { Host: host })).status, 200, host);
    }
    assert.equal((await call(s.port, s.token, 'getWorkspace', [], { Host: 'localhost:8888', Origin: 'http://localhost:8888' })).status, 200);
    assert.equal((await call(s.port, s.token, 'getWorkspace', [], { Host: 'localhost:8888', Origin: `http://localhost:${s.port}` })).status, 403);
  });

  test("a request from a foreign origin is refused; the page's own origin is fine", async () => {
    const foreign = await call(s.port, s.token, 'getWorkspace', [], { Origin: 'https://evil.example' });
    assert.equal(foreign.status, 403);
    assert.match(foreign.json.error.message, /requests from https:\/\/evil\.example are not allowed/);
    assert.equal(
      (await call(s.port, s.token, 'getWorkspace', [], { Origin: `http://localhost:${s.port}` })).status,
      403,
      'origin must match the Host it came through',
    );
    await assert.rejects(openEvents(s.port, { token: s.token, headers: { Origin: 'http://evil.example' } }), { status: 403 });
    assert.equal((await call(s.port, s.token, 'getWorkspace', [], { Origin: `http://127.0.0.1:${s.port}` })).status, 200);
  });
});

describe('with the token', () => {
  test('the first page load sets an HttpOnly SameSite=Strict cookie named for the port, and drops the token from the address', async () => {
    const first = await request(s.port, 'GET', `/?token=${s.token}`);
    assert.equal(first.status, 302);
    assert.equal(first.headers.location, '/');
    const cookie = String(first.headers['set-cookie']);
    assert.match(cookie, new RegExp(`^${TOKEN_COOKIE}_${s.port}=${s.token}; HttpOnly; SameSite=Strict; Path=/`));
    // through a tunnel the browser's port names the cookie
    const tunnelled = await request(s.port, 'GET', `/?token=${s.token}`, { headers: { Host: 'localhost:8888' } });
    assert.match(String(tunnelled.headers['set-cookie']), new RegExp(`^${TOKEN_COOKIE}_8888=${s.token};`));
    const page = await request(s.port, 'GET', '/', { headers: { Cookie: cookie.split(';')[0]! } });
    // dist/renderer is built by another part of `npm run build`; without it the page says so.
    assert.ok(page.status === 200 || page.status === 503, `status ${page.status}`);
    if (page.status === 503) assert.match(page.body, /UI not built: run npm run build/);
    else assert.match(page.body, /<html|<!doctype/i);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${s.port}`));
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    const api = await request(s.port, 'POST', '/api/getWorkspace', {
      headers: { Cookie: cookie.split(';')[0]!, 'Content-Type': 'application/json' },
      body: '[]',
    });
    assert.equal(api.status, 200);
    assert.equal(JSON.parse(api.body).shell, 'web');
  });

  test('POST /api/inspect of the sample DP checkpoint returns the DP verdict', async () => {
    const r = await call(s.port, s.token, 'inspect', [DP]);
    assert.equal(r.status, 200);
    assert.equal(r.json.layout.kind, 'dp');
    assert.deepEqual(r.json.layout.prefixes, ['module.']);
    assert.deepEqual(r.json.layout.devices, { 'cuda:0': 16 });
  });

  test('a conversion job pushes progress and done over the socket and writes a verified file', async () => {
    const { ws, events } = await openEvents(s.port, { token: s.token });
    try {
      const out = path.join(tempDir('serve-convert'), 'cpu.pt');
      const r = await call(s.port, s.token, 'startConversion', [DP, CPU_RULES, out, false]);
      assert.equal(r.status, 200);
      const job = r.json as string;
      const end = await until('job-done', () => events.find((e) => (e.type === 'job-done' || e.type === 'job-error') && e.job === job));
      assert.equal(end.type, 'job-done', JSON.stringify(end));
      assert.equal((end as Extract<ApiEvent, { type: 'job-done'; kind: 'convert' }>).result.verified, true);
      assert.ok(events.some((e) => e.type === 'job-progress' && e.job === job));
      assert.ok(fs.statSync(out).size > 0);
      const check = await call(s.port, s.token, 'inspect', [out]);
      assert.equal(check.json.layout.kind, 'cpu');
    } finally {
      ws.close();
    }
  });

  test("the browser's socket authenticates by cookie; a ?token= in its URL is refused like any API call's", async () => {
    const { ws } = await openEvents(s.port, { headers: { Cookie: `${TOKEN_COOKIE}_${s.port}=${s.token}`, Origin: `http://127.0.0.1:${s.port}` } });
    ws.close();
    await assert.rejects(openEvents(s.port, { query: `?token=${s.token}` }), (e: Error & { status?: number }) => e.status === 401);
    const probe = await request(s.port, 'GET', `/api/events?token=${s.token}`);
    assert.equal(probe.status, 401);
  });

  test('cancelJob stops a running conversion: job-error "cancelled", nothing written', async () => {
    const dir = tempDir('serve-cancel');
    const src = bigSafetensors(path.join(dir, 'big.safetensors'));
    const { ws, events } = await openEvents(s.port, { token: s.token });
    try {
      const job = (await call(s.port, s.token, 'startConversion', [src, CPU_RULES, path.join(dir, 'big.pt'), false])).json as string;
      await until('progress', () => events.find((e) => e.type === 'job-progress' && e.job === job));
      const cancel = await call(s.port, s.token, 'cancelJob', [job]);
      assert.deepEqual([cancel.status, cancel.json], [200, null]);
      const end = await until('the end', () => events.find((e) => (e.type === 'job-done' || e.type === 'job-error') && e.job === job));
      assert.equal(end.type, 'job-error');
      assert.equal((end as Extract<ApiEvent, { type: 'job-error' }>).error.kind, 'cancelled');
      assert.deepEqual(fs.readdirSync(dir), ['big.safetensors']);
    } finally {
      ws.close();
    }
  });
});

describe('bad requests', () => {
  test('path traversal, raw or encoded, never leaves the UI folder', async () => {
    const auth = { Authorization: `Bearer ${s.token}` };
    for (const p of [
      '/../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/..%2f..%2f..%2fetc%2fpasswd',
      '/assets/..%2f..%2f..%2fpackage.json',
      '/%2e%2e%5c%2e%2e%5cetc%5cpasswd',
      '/..%00/etc/passwd',
      '/%c0%ae%c0%ae/etc/passwd',
      '//etc/passwd',
    ]) {
      const r = await request(s.port, 'GET', p, { headers: auth });
      assert.ok(r.status === 404 || r.status === 403 || r.status === 400, `${p}: ${r.status}`);
      assert.doesNotMatch(r.body, /root:|"name": "checkpoint-workstation"/, p);
    }
  });

  test('bad arguments are a 400 with a one-line usage message', async () => {
    const cases: [string, unknown[], RegExp][] = [
      ['inspect', ['relative/dp.pt'], /^file must be an absolute path, not 'relative\/dp\.pt'$/],
      ['inspect', [], /^inspect takes 1 argument \(file\), not 0$/],
      ['tensorStats', [DP, ['module.conv1.weight'], 1e9], /bins must be a whole number from 1 to 1024/],
      ['startConversion', [DP, { preset: 'cpu' }, null, false], /rules has an unknown field|rules\.\w+ is missing/],
    ];
    for (const [method, args, message] of cases) {
      const r = await call(s.port, s.token, method, args);
      assert.equal(r.status, 400, method);
      assert.deepEqual(Object.keys(r.json), ['error']);
      assert.equal(r.json.error.kind, 'usage');
      assert.match(r.json.error.message, message);
    }
    const notJson = await request(s.port, 'POST', '/api/inspect', {
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' },
      body: '{oops',
    });
    assert.equal(notJson.status, 400);
    const notArray = await call(s.port, s.token, 'inspect', { file: DP } as unknown as unknown[]);
    assert.equal(notArray.status, 400);
  });

  test('engine errors keep their kind; wrong method, type and verb are refused', async () => {
    const notCkpt = await call(s.port, s.token, 'inspect', [path.join(path.dirname(DP), 'README.md')]);
    assert.deepEqual([notCkpt.status, notCkpt.json.error.kind], [422, 'not-a-checkpoint']);
    const missing = await call(s.port, s.token, 'inspect', ['/no/such/file.pt']);
    assert.deepEqual([missing.status, missing.json.error.kind], [422, 'io']);
    assert.equal((await call(s.port, s.token, 'runShell', ['ls'])).status, 404);
    assert.equal((await call(s.port, s.token, 'constructor', [])).status, 404);
    assert.equal((await request(s.port, 'GET', '/api/inspect', { headers: { Authorization: `Bearer ${s.token}` } })).status, 405);
    const form = await request(s.port, 'POST', '/api/getWorkspace', {
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'text/plain' },
      body: '[]',
    });
    assert.equal(form.status, 415);
    const big = await request(s.port, 'POST', '/api/inspect', {
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(['/' + 'a'.repeat(2 << 20)]),
    });
    assert.equal(big.status, 413);
  });
});

describe('stopping', () => {
  test('SIGTERM closes the server and the process exits 0', async () => {
    const other = await startServe();
    assert.equal(await other.stop(), 0);
    assert.match(other.stderr(), /stopping/);
  });

  test('a SIGTERM sent the moment the URL appears still stops cleanly (handlers precede the URL)', async () => {
    // Before the fix, 3 of 40 such stops killed the process by the signal's default action.
    for (let i = 0; i < 10; i++) assert.equal(await (await startServe()).stop(), 0, `run ${i}`);
  });

  test('a port in use given with --port is a one-line error', async () => {
    const other = await startServe(['--port', String(s.port), '--no-open']).catch((e: Error) => e);
    assert.ok(other instanceof Error);
    assert.match(other.message, /not a startup line: 'exited'.*ckpt: error: port \d+ is already in use; choose another --port, or --port 0 for a free one\n/s);
  });
});
