// The web server in-process, serving a small UI folder made here: the page and its assets with
// their types and headers, traversal out of the folder (links included), the not-built page,
// and `ckpt serve`'s choices of port and host.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseStartupLine, STARTUP_PREFIX } from '../../../shared/web-transport.ts';
import { createApiService } from '../../../main/service/service.ts';
import { DEFAULT_PORT, runServe } from '../../../main/cli/serve-command.ts';
import type { CliIO } from '../../../main/cli/io.ts';
import { allowedHosts, hostAllowed, isLoopback } from '../../../main/server/security.ts';
import { resolveStatic } from '../../../main/server/static-files.ts';
import { startWebServer, type WebServer } from '../../../main/server/web-server.ts';
import { MAX_BODY } from '../../../main/server/api-route.ts';
import { runVerify } from '../../../main/verify/run-verify.ts';
import { SAMPLE, tempDir } from '../service/helpers.ts';
import { call, request, until } from './helpers.ts';

const ui = tempDir('ui');
fs.mkdirSync(path.join(ui, 'assets'));
fs.writeFileSync(path.join(ui, 'index.html'), '<!doctype html><html><head><script type="module" src="/assets/app.js"></script></head><body>ui</body></html>');
fs.writeFileSync(path.join(ui, 'assets', 'app.js'), 'console.log(1)');
fs.writeFileSync(path.join(ui, 'assets', 'app.css'), 'body{}');
const secret = path.join(tempDir('outside'), 'secret.txt');
fs.writeFileSync(secret, 'top secret');
fs.symlinkSync(path.dirname(secret), path.join(ui, 'assets', 'escape'));

let server: WebServer;
let auth: Record<string, string>;
before(async () => {
  server = await startWebServer({ port: 0, rendererDir: ui, service: createApiService({ shell: 'web', configDir: tempDir('web-config') }) });
  auth = { Authorization: `Bearer ${server.token}` };
});
after(async () => {
  await server.close();
  await server.service.close();
});

describe('static files', () => {
  test('the page with its CSP and the assets with their types', async () => {
    const page = await request(server.port, 'GET', '/', { headers: auth });
    assert.equal(page.status, 200);
    assert.match(page.body, /<body>ui<\/body>/);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(
      page.headers['content-security-policy'],
      `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws://127.0.0.1:${server.port} wss://127.0.0.1:${server.port}; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    );
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal((await request(server.port, 'GET', '/index.html', { headers: auth })).body, page.body);
    const js = await request(server.port, 'GET', '/assets/app.js', { headers: auth });
    assert.deepEqual([js.status, js.headers['content-type'], js.body], [200, 'text/javascript; charset=utf-8', 'console.log(1)']);
    assert.equal((await request(server.port, 'GET', '/assets/app.css', { headers: auth })).headers['content-type'], 'text/css; charset=utf-8');
    const head = await request(server.port, 'HEAD', '/assets/app.js', { headers: auth });
    assert.deepEqual([head.status, head.body], [200, '']);
    assert.equal((await request(server.port, 'DELETE', '/assets/app.js', { headers: auth })).status, 405);
  });

  test('missing files, folders and anything outside the folder are 404', async () => {
    for (const p of [
      '/nope.js',
      '/assets',
      '/assets/escape/secret.txt',
      '/assets/%2e%2e/%2e%2e/' + path.basename(path.dirname(secret)) + '/secret.txt',
      `/..${encodeURIComponent(path.dirname(secret))}/secret.txt`,
    ]) {
      const r = await request(server.port, 'GET', p, { headers: auth });
      assert.equal(r.status, 404, p);
      assert.doesNotMatch(r.body, /top secret/);
    }
    assert.equal(resolveStatic(ui, '/assets/escape/secret.txt'), null, 'a link out of the folder');
    assert.equal(resolveStatic(ui, '/%E0%A4%A'), null, 'malformed escapes');
    assert.equal(resolveStatic(ui, '/assets/app.js'), fs.realpathSync(path.join(ui, 'assets', 'app.js')));
  });

  test('without a built UI the page says how to build it (503), and the API still works', async () => {
    const bare = await startWebServer({ port: 0, rendererDir: tempDir('no-ui'), service: server.service });
    try {
      const page = await request(bare.port, 'GET', '/', { headers: { Authorization: `Bearer ${bare.token}` } });
      assert.equal(page.status, 503);
      assert.match(page.body, /UI not built: run npm run build/);
      assert.equal((await call(bare.port, bare.token, 'getWorkspace', [])).status, 200);
      assert.notEqual(bare.token, server.token, 'every server has its own token');
    } finally {
      await bare.close();
    }
  });
});

describe('API bodies', () => {
  test('a verify report larger than the 1 MiB argument limit renders as HTML; any other call that large is a 413', async () => {
    const digits = path.join(SAMPLE, 'digits-cnn');
    const report = await runVerify({
      model: path.join(digits, 'model.onnx'),
      data: path.join(digits, 'digits-test.npz'),
      checkpoint: path.join(digits, 'cpu.pt'),
      device: 'cpu',
    });
    const big = { ...report, reasons: [...report.reasons, 'x'.repeat(MAX_BODY + 1000)] };
    const r = await call(server.port, server.token, 'verifyReportHtml', [big]);
    assert.equal(r.status, 200);
    assert.match(r.json as string, /^<!doctype html>[\s\S]*<span class="verdict pass">PASS<\/span>/);
    const other = await call(server.port, server.token, 'jobStatus', ['job-' + '1'.repeat(MAX_BODY)]);
    assert.equal(other.status, 413);
    const bad = await call(server.port, server.token, 'verifyReportHtml', [{ ...report, verdict: '<b>PASS</b>' }]);
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /report\.verdict must be one of PASS, WARN, FAIL/);
  });

  test("jobStatus over HTTP: an unknown job; a failed job is a 200 with the job's error in it", async () => {
    const r = await call(server.port, server.token, 'jobStatus', ['job-42']);
    assert.deepEqual([r.status, r.json], [200, { state: 'unknown' }]);
    const digits = path.join(SAMPLE, 'digits-cnn');
    const started = await call(server.port, server.token, 'startVerify', [
      { model: path.join(digits, 'gone.onnx'), data: path.join(digits, 'digits-test.npz'), checkpoint: path.join(digits, 'cpu.pt') },
    ]);
    assert.equal(started.status, 200);
    const job = started.json as string;
    let status = await call(server.port, server.token, 'jobStatus', [job]);
    for (const t0 = Date.now(); status.json.state === 'running' && Date.now() - t0 < 30_000; ) {
      await new Promise((r) => setTimeout(r, 20));
      status = await call(server.port, server.token, 'jobStatus', [job]);
    }
    assert.equal(status.status, 200);
    assert.deepEqual([status.json.state, status.json.kind, status.json.error.kind], ['error', 'verify', 'io']);
  });
});

describe('ckpt serve', () => {
  const io = (): CliIO & { out: string; err: string } => {
    const b = { out: '', err: '', color: false, isTTY: false, stdout: (s: string) => void (b.out += s), stderr: (s: string) => void (b.err += s) };
    return b;
  };

  test(`the default port ${DEFAULT_PORT} falls back to a free one when taken, and says so`, async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.once('error', () => resolve()).listen(DEFAULT_PORT, '127.0.0.1', () => resolve()));
    const stop = new AbortController();
    const b = io();
    try {
      const done = runServe(['--no-open'], b, { signal: stop.signal });
      const line = await until('the startup line', () => (b.out.includes('\n') ? b.out.trim() : undefined));
      const parsed = parseStartupLine(line);
      assert.ok(parsed, line);
      const port = Number(new URL(parsed.origin).port);
      assert.notEqual(port, DEFAULT_PORT);
      assert.match(b.err, new RegExp(`port ${DEFAULT_PORT} is taken; using port ${port} instead`));
      assert.equal((await call(port, parsed.token, 'getWorkspace', [])).status, 200);
      stop.abort();
      assert.equal(await done, 0);
    } finally {
      blocker.close();
    }
  });

  test('a non-loopback host is served with a loud warning; its own address is an allowed Host', async () => {
    const stop = new AbortController();
    const b = io();
    const done = runServe(['--host', '0.0.0.0', '--port', '0', '--no-open'], b, { signal: stop.signal });
    const line = await until('the startup line', () => (b.out.includes('\n') ? b.out.trim() : undefined));
    assert.ok(line.startsWith(`${STARTUP_PREFIX}http://127.0.0.1:`));
    assert.match(b.err, /^WARNING: serving on 0\.0\.0\.0, which is not this machine's loopback address/);
    stop.abort();
    assert.equal(await done, 0);
  });

  /** Runs `ckpt serve ARGS` in-process until the test is done with its startup line. */
  async function serving(
    args: string[],
    env: Record<string, string | undefined>,
    use: (parsed: { token: string; port: number; url: string }) => Promise<void>,
  ): Promise<void> {
    const saved = process.env['CKPT_TOKEN'];
    if ('CKPT_TOKEN' in env) process.env['CKPT_TOKEN'] = env['CKPT_TOKEN'];
    const stop = new AbortController();
    const b = io();
    try {
      const done = runServe([...args, '--port', '0', '--no-open'], b, { signal: stop.signal });
      const line = await until('the startup line', () => (b.out.includes('\n') ? b.out.trim() : undefined));
      const parsed = parseStartupLine(line);
      assert.ok(parsed, line);
      await use({ token: parsed.token, port: Number(new URL(parsed.origin).port), url: parsed.url });
      stop.abort();
      assert.equal(await done, 0);
    } finally {
      if (saved === undefined) delete process.env['CKPT_TOKEN'];
      else process.env['CKPT_TOKEN'] = saved;
    }
  }

  test('--token, else CKPT_TOKEN, fixes the token across restarts; the URL is still printed', async () => {
    const fixed = 'a-fixed-token_0123456789';
    await serving(['--token', fixed], { CKPT_TOKEN: 'the-env-token-is-second' }, async ({ token, port, url }) => {
      assert.equal(token, fixed);
      assert.equal(url, `http://127.0.0.1:${port}/?token=${fixed}`);
      assert.equal((await call(port, fixed, 'getWorkspace', [])).status, 200);
    });
    await serving([], { CKPT_TOKEN: 'the-env-token-is-second' }, async ({ token, port }) => {
      assert.equal(token, 'the-env-token-is-second');
      assert.equal((await call(port, 'a-fixed-token_0123456789', 'getWorkspace', [])).status, 401);
    });
    await assert.rejects(
      runServe(['--token', 'short', '--no-open'], io()),
      /^CheckpointError: --token must be at least 16 characters of A-Z a-z 0-9 _ - \(got 5 characters\)$/,
    );
    await assert.rejects(runServe(['--token', 'has spaces in it, sixteen+', '--no-open'], io()), /some of them not allowed/);
    const saved = process.env['CKPT_TOKEN'];
    process.env['CKPT_TOKEN'] = 'tiny';
    try {
      await assert.rejects(runServe(['--no-open'], io()), /CKPT_TOKEN must be at least 16 characters/);
    } finally {
      if (saved === undefined) delete process.env['CKPT_TOKEN'];
      else process.env['CKPT_TOKEN'] = saved;
    }
  });

  test("--allow-host accepts a reverse proxy's name; other names stay refused", async () => {
    await serving(['--allow-host', 'ckpt.lab.example', '--allow-host', 'gpu-box:443'], {}, async ({ token, port }) => {
      assert.equal((await call(port, token, 'getWorkspace', [], { Host: 'ckpt.lab.example', Origin: 'https://ckpt.lab.example' })).status, 200);
      assert.equal((await call(port, token, 'getWorkspace', [], { Host: 'gpu-box:443' })).status, 200);
      const other = await call(port, token, 'getWorkspace', [], { Host: 'gpu-box:80' });
      assert.equal(other.status, 403);
      assert.match(other.json.error.message, /^refused: Host 'gpu-box:80' is not this server \(serve it under that name with --allow-host NAME\)$/);
    });
    await assert.rejects(runServe(['--allow-host', 'http://x/', '--no-open'], io()), /--allow-host takes a host name/);
  });

  test('bad options are usage errors', async () => {
    await assert.rejects(runServe(['--port', '70000'], io()), /--port takes a port number from 0 to 65535/);
    await assert.rejects(runServe(['--port', 'x'], io()), /--port takes a port number/);
    await assert.rejects(runServe(['--host', 'a b'], io()), /--host takes an address/);
    await assert.rejects(runServe(['model.pt'], io()), /serve takes no file or folder/);
  });

  test('which Host headers a server accepts', () => {
    // Bound to loopback: the loopback names on any port (a tunnel's local port), nothing else.
    const local = allowedHosts('127.0.0.1', 8000);
    for (const h of ['127.0.0.1:8000', 'localhost:8888', '[::1]:9', 'LOCALHOST:1', '127.0.0.1']) assert.ok(hostAllowed(local, h), h);
    for (const h of ['10.1.2.3:8000', 'evil.example:8000', 'localhost.evil.example:8000', '127.0.0.1:x', '127.0.0.1:8000:1', '', '[::2]:8000'])
      assert.ok(!hostAllowed(local, h), h);
    // Bound elsewhere: its own names on its own port only.
    assert.ok(hostAllowed(allowedHosts('10.1.2.3', 8000), '10.1.2.3:8000'));
    assert.ok(!hostAllowed(allowedHosts('10.1.2.3', 8000), '10.1.2.3:8001'));
    assert.ok(!hostAllowed(allowedHosts('10.1.2.3', 8000), 'localhost:8001'));
    assert.ok(hostAllowed(allowedHosts('0.0.0.0', 9), '127.0.0.1:9'));
    // --allow-host: a name on any port, or one name:port.
    const proxied = allowedHosts('127.0.0.1', 8000, ['ckpt.lab.example', 'gpu-box:443']);
    for (const h of ['ckpt.lab.example', 'ckpt.lab.example:8443', 'gpu-box:443']) assert.ok(hostAllowed(proxied, h), h);
    for (const h of ['gpu-box:80', 'gpu-box', 'lab.example']) assert.ok(!hostAllowed(proxied, h), h);
    assert.deepEqual(['127.0.0.1', '127.8.9.1', 'localhost', '::1', '[::1]', '0.0.0.0', '10.0.0.1', 'example.com'].map(isLoopback), [
      true,
      true,
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});
