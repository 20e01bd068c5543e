import { spawnSync } from 'node:child_process';

export interface Sample {
  wallS: number;
  maxRssMB: number;
}

/** Runs a command under GNU time; returns wall seconds and peak RSS. Fails loudly on a non-zero exit. */
export function measure(cmd: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Sample {
  const r = spawnSync('/usr/bin/time', ['-f', '__TIME__ %e %M', ...cmd], {
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    maxBuffer: 1 << 30,
  });
  const m = /__TIME__ ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr.slice(-500)}`);
  // GNU time's %e has 10 ms resolution; use our own clock too and take the finer one
  return { wallS: Number(m[1]), maxRssMB: Number(m[2]) / 1024 };
}

/** Wall time measured by this process around a command (ms resolution). */
export function timed(cmd: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Sample {
  const t0 = performance.now();
  const s = measure(cmd, opts);
  const wall = (performance.now() - t0) / 1000;
  return { wallS: Math.min(wall, Math.max(s.wallS, 0.001)) || wall, maxRssMB: s.maxRssMB };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function repeat(n: number, f: () => Sample): { wallS: number; maxRssMB: number; runs: number[] } {
  const runs: Sample[] = [];
  for (let i = 0; i < n; i++) runs.push(f());
  return { wallS: median(runs.map((r) => r.wallS)), maxRssMB: Math.max(...runs.map((r) => r.maxRssMB)), runs: runs.map((r) => r.wallS) };
}
