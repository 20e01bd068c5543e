// Shared pieces of the interop suite: real torch 1.13 (Debian's /usr/bin/python3 only), the
// built CLI run asynchronously, temp folders, hashes. Not a test file itself.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConversionReport } from '../../shared/convert.ts';
import { CLI, REPO } from '../helpers/run-cli.ts';

export { CLI, REPO };
/** Debian's python, the only one with torch. The plain `python3` has none. */
export const PY = '/usr/bin/python3';
/** torch 2.x (CPU) from the local wheel folder: the venv test/fixtures/setup-torch2.sh makes (CI runs it). */
export const PY2 = join(REPO, '.venv-torch2', 'bin', 'python');
export const FIXTURES = join(REPO, 'test', 'fixtures');
export const TORCH_FIXTURES = join(FIXTURES, 'torch');
export const INTEROP_PY = join(FIXTURES, 'interop');
export const IN_CI = process.env['CI'] === 'true';
export const CORES = Math.max(1, availableParallelism());

let torchState: { reason: string | null; version: string } | undefined;

/**
 * Why the interop tests cannot run here, or null when they can. In CI torch is always there, so
 * its absence fails loudly instead of skipping.
 */
export function torchSkipReason(): string | null {
  if (!torchState) {
    const r = spawnSync(PY, ['-I', '-B', '-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
    const ok = r.status === 0;
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').pop() || `exit ${r.status}`;
    torchState = { reason: ok ? null : `${PY} cannot import torch (${why})`, version: ok ? r.stdout.trim() : '' };
    if (!ok && IN_CI) throw new Error(`interop tests need real PyTorch in CI: ${torchState.reason}`);
    if (!ok) console.log(`# skip: ${torchState.reason}; the interop suite needs Debian's torch 1.13 (CI always runs it)`);
    if (!existsSync(CLI)) {
      const msg = `${CLI} is missing; run \`npm run build\` first`;
      if (IN_CI) throw new Error(msg);
      torchState.reason = msg;
      console.log(`# skip: ${msg}`);
    }
  }
  return torchState.reason;
}

export function torchVersion(): string {
  torchSkipReason();
  return torchState!.version;
}

export interface PyResult {
  id: string;
  errors: string[];
  info: Record<string, any>;
}

/** Runs a helper script under test/fixtures/interop with a JSON spec on stdin; parses its JSON stdout. */
export function runPython<T = any>(script: string, spec: unknown, timeoutMs = 240_000, python = PY): T {
  const r = spawnSync(python, ['-I', '-B', join(INTEROP_PY, script)], {
    input: JSON.stringify(spec),
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 256 << 20,
    cwd: tmpdir(), // nothing importable by accident from the repository
    env: { ...process.env, OMP_NUM_THREADS: '1' }, // -I ignores PYTHON* variables; -B: no __pycache__ in the repository
  });
  if (r.error) throw new Error(`${script}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${r.stderr.trim().split('\n').slice(-8).join('\n')}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${script} printed no JSON: ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
  }
}

/** check_output.py on many checks at once (one torch start-up for all of them). */
export function checkWithTorch(checks: unknown[], extra: Record<string, unknown> = {}): Map<string, PyResult> {
  if (!checks.length) return new Map();
  const out = runPython<{ torch: string; results: PyResult[] }>('check_output.py', {
    fixtures_dir: FIXTURES,
    metadata_ref: { cpu: join(TORCH_FIXTURES, 'cpu_state_dict.pt'), dp: join(TORCH_FIXTURES, 'dp_state_dict.pt') },
    checks,
    ...extra,
  });
  return new Map(out.results.map((r) => [r.id, r]));
}

export interface CliRun {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The built CLI in a child process, without blocking the event loop (so many can run at once). */
export function runCliAsync(args: string[], opts: { cwd?: string; timeoutMs?: number; wrap?: string[] } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = [...(opts.wrap ?? []), process.execPath];
    const p = spawn(cmd!, [...pre, CLI, ...args], { cwd: opts.cwd ?? REPO, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
  });
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Every stdout line parsed as JSON (a `--json` run prints nothing else). */
export function jsonLines(stdout: string): any[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** The `{"event":"report"}` line a single-file `--json` conversion ends with. */
export function reportOf(stdout: string): ConversionReport {
  const lines = jsonLines(stdout);
  const last = lines[lines.length - 1];
  if (!last || last.event !== 'report') throw new Error(`no report line at the end of: ${stdout.slice(-300)}`);
  return last.report as ConversionReport;
}

const temps: string[] = [];
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `ckpt-interop-${prefix}-`));
  temps.push(d);
  return d;
}
export function removeTemps(): void {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The one line an error run prints: `ckpt: error: …` / `ckpt: usage: …`. */
export function oneErrorLine(stderr: string): string {
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => l.trim());
  if (lines.length !== 1) throw new Error(`expected one stderr line, got ${lines.length}: ${stderr}`);
  return lines[0]!;
}
