// Shared by the browser tests: the real backend (`node dist/ckpt.js serve --port 0`), Debian's
// Chromium driven by playwright-core, checkpoints written by real torch, screenshots. Not a test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { parseStartupLine } from '../../shared/web-transport.ts';
import { runCli } from '../helpers/run-cli.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(REPO, 'dist', 'ckpt.js');
export const SAMPLE_DIR = join(REPO, 'build', 'sample-workspace', 'digits-cnn');
export const CHROMIUM = '/usr/bin/chromium';
export const PY = '/usr/bin/python3';
export const IN_CI = process.env['CI'] === 'true';
const SHOTS = join(REPO, 'test-results', 'screenshots');
const README_SHOTS = join(REPO, 'build', 'screenshots');

/**
 * Why the browser tests cannot run here, or null when they can. In CI Chromium and the build
 * are always there, so their absence fails instead of skipping.
 */
export function browserSkipReason(): string | null {
  return skipUnless(!existsSync(CHROMIUM) ? `${CHROMIUM} is missing (apt-get install chromium)` : null) ?? buildSkipReason();
}

/** Why the built app (dist/ckpt.js and dist/renderer) is not there to test, or null. */
export function buildSkipReason(): string | null {
  return skipUnless(!existsSync(CLI) || !existsSync(join(REPO, 'dist', 'renderer', 'index.html')) ? 'dist/ is not built; run `npm run build` first' : null);
}

function skipUnless(missing: string | null): string | null {
  if (!missing) return null;
  if (IN_CI) throw new Error(`browser tests need ${missing}; CI always runs them`);
  console.log(`# skip: ${missing}`);
  return missing;
}

let torchReason: string | null | undefined;
/** Why torch cannot write test checkpoints here, or null. CI always has it. */
export function torchSkipReason(): string | null {
  if (torchReason === undefined) {
    const r = spawnSync(PY, ['-I', '-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
    torchReason = r.status === 0 ? null : `${PY} cannot import torch (${(r.stderr || String(r.error ?? '')).trim().split('\n').pop()})`;
    if (torchReason && IN_CI) throw new Error(`browser tests need real torch in CI: ${torchReason}`);
    if (torchReason) console.log(`# skip: ${torchReason}`);
  }
  return torchReason;
}

/** Writes a checkpoint with real torch (see make_checkpoints.py). */
export function makeCheckpoint(kind: 'keys10k' | 'large', out: string, ...args: string[]): void {
  const r = spawnSync(PY, ['-I', fileURLToPath(new URL('./make_checkpoints.py', import.meta.url)), kind, out, ...args], { encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`make_checkpoints.py ${kind} failed: ${r.stderr || r.error}`);
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `ckpt-e2e-${name}-`));
}

/** The sample's dp.pt converted to cpu by the CLI, as `dir/dp-cpu.pt`: what the Verify tests check against its source. */
export function convertSampleToCpu(dir: string): string {
  const out = join(dir, 'dp-cpu.pt');
  const r = runCli(['convert', join(SAMPLE_DIR, 'dp.pt'), '--preset', 'cpu', '-o', out]);
  if (r.code !== 0) throw new Error(`ckpt convert failed: ${r.stderr}`);
  return out;
}

export interface Server {
  url: string;
  origin: string;
  token: string;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts the real backend as a user would, with its own empty config folder (so it is a first
 * launch), and waits for its startup line.
 */
export async function startServer(env: Record<string, string | undefined> = {}): Promise<Server> {
  const config = tempDir('config');
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--no-open'], {
    cwd: REPO,
    env: { ...process.env, XDG_CONFIG_HOME: config, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ckpt serve printed no startup line in 30 s; stderr: ${err}`)), 30_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ckpt serve exited with ${code}: ${err}`));
    });
  });
  const parsed = parseStartupLine(line);
  if (!parsed) throw new Error(`unexpected startup line: ${line}`);
  return {
    ...parsed,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(config, { recursive: true, force: true });
    },
  };
}

export interface Browser {
  page: Page;
  context: BrowserContext;
  /** console errors and uncaught page errors seen so far */
  problems: string[];
  close(): Promise<void>;
}

export interface BrowserOptions {
  colorScheme?: 'dark' | 'light';
  width?: number;
  height?: number;
}

/**
 * A suite's backend and the browser on it: started in a `before` hook (after the suite's own
 * hooks registered earlier, which write its files), both stopped after its tests. `url` picks
 * the page to open on the running server; the server's start URL by default.
 */
export function serveAndBrowse(opts: { env?: () => Record<string, string | undefined>; url?: (server: Server) => string } & BrowserOptions = {}): {
  readonly server: Server;
  readonly browser: Browser;
} {
  const app = {} as { server: Server; browser: Browser };
  before(async () => {
    app.server = await startServer(opts.env?.());
    app.browser = await openBrowser(opts.url?.(app.server) ?? app.server.url, opts);
  });
  after(async () => {
    await app.browser?.close();
    await app.server?.stop();
  });
  return app;
}

/** Debian's Chromium, headless, with a fresh user-data folder, opened on `url`. */
export async function openBrowser(url: string, opts: BrowserOptions = {}): Promise<Browser> {
  const profile = tempDir('profile');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: opts.width ?? 1360, height: opts.height ?? 860 },
    colorScheme: opts.colorScheme ?? 'dark',
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(url);
  return {
    page,
    context,
    problems,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The screenshots kept in the repository (build/screenshots/), one or two per view. */
const README_SET = new Set(['checkpoint', 'checkpoint-10k-search', 'convert-result', 'batch-resumed', 'devices', 'devices-plan', 'verify', 'reshard']);

/**
 * Saves a screenshot to test-results/screenshots/NAME.png; with CKPT_UPDATE_SCREENSHOTS=1 the
 * README's set is also copied to build/screenshots/.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  if (process.env['CKPT_UPDATE_SCREENSHOTS'] === '1' && README_SET.has(name)) {
    mkdirSync(README_SHOTS, { recursive: true });
    copyFileSync(file, join(README_SHOTS, `${name}.png`));
  }
}

/** Clicks a view in the navigation rail. */
export async function showView(page: Page, name: 'Checkpoint' | 'Convert' | 'Batch' | 'Devices' | 'Verify' | 'Re-shard' | 'Diff'): Promise<void> {
  await page.getByRole('navigation', { name: 'Views' }).getByRole('button', { name, exact: true }).click();
}

/** Opens a file through the address (`#/VIEW?file=…`), as a bookmark or another tab would, and waits for the top bar to name it. */
export async function openByAddress(page: Page, view: string, file: string): Promise<void> {
  await page.evaluate(`location.hash = ${JSON.stringify(`#/${view}?file=${encodeURIComponent(file)}`)}`);
  await page
    .getByTestId('open-file')
    .filter({ hasText: file.split('/').pop()! })
    .waitFor();
}

/** Polls `read` until it gives `want` (a field filled in by the app after a folder listing), then asserts it. */
export async function waitForValue(read: () => Promise<string>, want: string, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  let got = await read();
  while (got !== want && Date.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 50));
    got = await read();
  }
  if (got !== want) throw new Error(`expected ${JSON.stringify(want)}, still ${JSON.stringify(got)} after ${timeoutMs} ms`);
}

let axeSource: string | undefined;

/**
 * axe-core's serious and critical accessibility violations on the page as it is now, one line
 * each (`rule: element: message`). axe's source is evaluated through the DevTools protocol,
 * which the page's Content-Security-Policy (script-src 'self') does not apply to.
 */
export async function seriousA11yViolations(page: Page): Promise<string[]> {
  axeSource ??= readFileSync(join(REPO, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  if (!(await page.evaluate('typeof window.axe !== "undefined"'))) await page.evaluate(axeSource);
  return (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => v.id + ': ' + n.target.join(' ') + ': ' + ((n.any[0] || n.all[0] || n.none[0] || {}).message || v.help))))`)) as string[];
}
