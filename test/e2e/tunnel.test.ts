// Web mode the way it is used on a GPU server: through an SSH tunnel on another local port
// (`ssh -L 8888:127.0.0.1:7860`), simulated by a TCP forwarder; two servers side by side in one
// browser; a fixed token that survives a restart; and what the page says when it no longer does.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { browserSkipReason, openBrowser, screenshot, startServer, type Browser, type Server } from './helpers.ts';

const skip = browserSkipReason();

/** What `ssh -L` does: a local port whose connections are piped, byte for byte, to `target`. */
class TcpForwarder {
  target: number;
  private readonly server = net.createServer((client) => {
    const upstream = net.connect(this.target, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(target: number) {
    this.target = target;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Drops the open connections (a restarted server would), keeping the port. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const portOf = (s: Server): number => Number(new URL(s.origin).port);
const FIXED = 'tunnel-test-token-0123456789';

describe('web mode through a tunnel', { skip: skip ?? false }, () => {
  let a: Server;
  let b: Server;
  let tunnel: TcpForwarder;
  let browser: Browser;

  before(async () => {
    a = await startServer({ CKPT_TOKEN: FIXED });
    b = await startServer();
    tunnel = await new TcpForwarder(portOf(a)).listen();
    assert.notEqual(tunnel.port, portOf(a));
    browser = await openBrowser(`http://127.0.0.1:${tunnel.port}/?token=${FIXED}`, { width: 1024, height: 700 });
  });
  after(async () => {
    await browser?.close();
    await tunnel?.close();
    await a?.stop();
    await b?.stop();
  });

  /** The page is up and its API answers: the sample checkpoint's verdict is on screen. */
  async function sampleOpen(page: Browser['page']): Promise<void> {
    const verdict = page.getByRole('region', { name: 'Layout' }).getByTestId('layout-verdict');
    await verdict.waitFor({ timeout: 30_000 });
    assert.equal(await verdict.getAttribute('data-kind'), 'dp');
  }

  it("loads the page and answers the API on the tunnel's port, with the token taken out of the address", { timeout: 60_000 }, async () => {
    const { page } = browser;
    await sampleOpen(page);
    assert.equal(new URL(page.url()).port, String(tunnel.port));
    assert.equal(new URL(page.url()).searchParams.get('token'), null);
    const cookies = await browser.context.cookies(`http://127.0.0.1:${tunnel.port}/`);
    assert.deepEqual(
      cookies.map((c) => c.name),
      [`ckpt_token_${tunnel.port}`],
    );
    // The event socket is up too: no "reconnecting" in the top bar.
    assert.equal(await page.getByText('Connection lost; reconnecting…').count(), 0);
    await screenshot(page, 'tunnel-1024');
    assert.deepEqual(browser.problems, []);
  });

  it('keeps two servers in one browser apart: each keeps its own cookie', { timeout: 60_000 }, async () => {
    const second = await browser.context.newPage();
    await second.goto(b.url);
    await sampleOpen(second);
    // Back on the first server: a reload still has its session.
    await browser.page.reload();
    await sampleOpen(browser.page);
    const names = (await browser.context.cookies()).map((c) => c.name).sort();
    assert.deepEqual(names, [`ckpt_token_${portOf(b)}`, `ckpt_token_${tunnel.port}`].sort());
    await second.close();
  });

  it('a restart with the same token (CKPT_TOKEN) keeps the page working; a new token says the session expired', { timeout: 90_000 }, async () => {
    const { page } = browser;
    await a.stop();
    a = await startServer({ CKPT_TOKEN: FIXED });
    tunnel.target = portOf(a);
    tunnel.dropConnections();
    await page.reload();
    await sampleOpen(page);
    assert.equal(await page.getByTestId('session-expired').count(), 0);

    await a.stop();
    a = await startServer();
    tunnel.target = portOf(a);
    tunnel.dropConnections();
    const banner = page.getByTestId('session-expired');
    await banner.waitFor({ timeout: 30_000 });
    assert.match(
      await banner.innerText(),
      /Session expired\.\s+The server was restarted with a new token.*Open the address `ckpt serve` printed.*--token T or CKPT_TOKEN/s,
    );
    await screenshot(page, 'session-expired-1024');
    // Opening the new address in this tab gets back in.
    await page.goto(`http://127.0.0.1:${tunnel.port}/?token=${a.token}`);
    await sampleOpen(page);
    assert.equal(await page.getByTestId('session-expired').count(), 0);
  });
});
