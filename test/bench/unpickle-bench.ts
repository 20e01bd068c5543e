// `npm run bench unpickle`: the 100,000-tensor checkpoint's data.pkl, item reader vs the VM alone
// (unpickle-ab.ts, interleaved in one process): CPU time, with the part spent collecting garbage.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { BenchResult } from './run.ts';

interface Way {
  cpuMs: number;
  gcMs: number;
  runs: number[];
}

export function unpickleBenchmarks(dir: string): BenchResult[] {
  const out = spawnSync(process.execPath, ['--import', 'tsx', 'test/bench/unpickle-ab.ts', join(dir, 'keys_100k.pt'), '5'], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`unpickle-ab.ts failed: ${out.stderr}`);
  const { fast, vm } = JSON.parse(out.stdout) as { fast: Way; vm: Way };
  const ms = (w: Way): string => `${w.cpuMs.toFixed(0)} ms CPU (${w.gcMs.toFixed(0)} ms of it GC)`;
  return [
    {
      name: '100,000-tensor data.pkl: unpickle + scan, item reader vs VM alone',
      value: `${ms(fast)} vs ${ms(vm)}: ${(vm.cpuMs / fast.cpuMs).toFixed(2)}×`,
      target: 'shown for context',
      pass: true,
      info: true,
      detail: `medians of 5, interleaved; runs ${fast.runs.map((x) => x.toFixed(0)).join(', ')} vs ${vm.runs.map((x) => x.toFixed(0)).join(', ')} ms`,
    },
  ];
}
