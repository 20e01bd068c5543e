// `npm run bench`: speed and memory targets, each measured side by side with its peer in one run.
// Inputs are written by real torch into .bench/ (not committed). Medians of N runs are reported.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertBenchmarks } from './convert-bench.ts';
import { inspectBenchmarks } from './inspect-bench.ts';
import { verifyBenchmarks } from './verify-bench.ts';

const dir = process.env['BENCH_DIR'] ?? '.bench';
mkdirSync(dir, { recursive: true });
console.log(`preparing inputs in ${dir} with /usr/bin/python3 (torch)...`);
const mk = spawnSync('/usr/bin/python3', ['test/bench/make-files.py', dir], { stdio: 'inherit' });
if (mk.status !== 0) process.exit(1);

const only = process.argv.slice(2);
const groups: Record<string, (dir: string) => BenchResult[]> = { inspect: inspectBenchmarks, convert: convertBenchmarks, verify: verifyBenchmarks };
groups['reshard'] = (await import('./reshard-bench.ts')).reshardBenchmarks;
groups['verify-python'] = (await import('./verify-python-bench.ts')).verifyPythonBenchmarks;
groups['fitdiff'] = (await import('./fitdiff-bench.ts')).fitDiffBenchmarks;
groups['scale'] = (await import('./scale-bench.ts')).scaleBenchmarks;
groups['deepspeed'] = (await import('./deepspeed-bench.ts')).deepspeedBenchmarks;
groups['pickle-vm'] = (await import('./pickle-vm-bench.ts')).pickleVmBenchmarks;
groups['unpickle'] = (await import('./unpickle-bench.ts')).unpickleBenchmarks;
export interface BenchResult {
  name: string;
  value: string;
  target: string;
  pass: boolean;
  detail?: string;
  /** a figure shown for context, with no target of its own (printed INFO, not counted) */
  info?: boolean;
}

const results: (BenchResult & { group: string })[] = [];
for (const [name, run] of Object.entries(groups)) {
  if (only.length && !only.includes(name)) continue;
  console.log(`\n== ${name}`);
  for (const r of run(dir)) {
    results.push({ group: name, ...r });
    console.log(`${r.info ? 'INFO' : r.pass ? 'PASS' : 'MISS'}  ${r.name}: ${r.value}  (target ${r.target})${r.detail ? `\n      ${r.detail}` : ''}`);
  }
}
// results.json keeps the last figures of every group: a run of some groups replaces only theirs
const saved = join(dir, 'results.json');
const before = existsSync(saved) ? (JSON.parse(readFileSync(saved, 'utf8')) as (BenchResult & { group?: string })[]) : [];
const ran = new Set(results.map((r) => r.group));
writeFileSync(saved, JSON.stringify([...before.filter((r) => r.group !== undefined && !ran.has(r.group)), ...results], null, 2));
const targets = results.filter((r) => !r.info);
console.log(`\n${targets.filter((r) => r.pass).length} of ${targets.length} targets met; details in ${join(dir, 'results.json')}`);
