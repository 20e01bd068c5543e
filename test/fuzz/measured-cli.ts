import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, REPO } from '../helpers/run-cli.ts';

const PEAK_RSS = fileURLToPath(new URL('./peak-rss.mjs', import.meta.url));

export interface MeasuredRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** peak resident set of the whole process, MiB (null when it was killed before it could say) */
  peakMiB: number | null;
  /** CPU time the child used (user + system), ms: the budget that does not depend on how loaded the machine is */
  cpuMs: number | null;
  timedOut: boolean;
}

/**
 * Runs the built `ckpt` in a child process and measures it: wall time, CPU time and peak RSS
 * (from the child's own getrusage at exit). A child still running after `timeoutMs` is killed.
 */
export function runMeasured(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<MeasuredRun> {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-rss-'));
  const rssFile = join(dir, 'rss');
  const started = performance.now();
  const child = spawn(process.execPath, [PEAK_RSS, CLI, ...args], {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: '1', CKPT_PEAK_RSS_FILE: rssFile, ...opts.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    if (stdout.length < 1 << 20) stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 1 << 20) stderr += s;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 30_000);
  return new Promise((resolveRun, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      let peakMiB: number | null = null;
      let cpuMs: number | null = null;
      try {
        const u = JSON.parse(readFileSync(rssFile, 'utf8')) as { maxRssKiB: number; cpuMs: number };
        [peakMiB, cpuMs] = [u.maxRssKiB / 1024, u.cpuMs];
      } catch {
        /* killed */
      }
      rmSync(dir, { recursive: true, force: true });
      resolveRun({ code, signal, stdout, stderr, ms, peakMiB, cpuMs, timedOut });
    });
  });
}
