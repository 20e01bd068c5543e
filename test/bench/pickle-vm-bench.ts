// `npm run bench pickle-vm`: each hostile pickle case of pickle-vm-cases.ts in its own process,
// median wall time and peak RSS of 3 runs, against issue 16's budget for any input (10 s, 500 MB).
import { CUTS, PICKLE_VM_CASES } from './pickle-vm-cases.ts';
import { measure, repeat } from './measure.ts';
import type { BenchResult } from './run.ts';

const BUDGET_S = 10;
const BUDGET_MB = 500;

export function pickleVmBenchmarks(): BenchResult[] {
  return Object.entries(PICKLE_VM_CASES).map(([name, [what]]) => {
    const r = repeat(3, () => measure([process.execPath, '--import', 'tsx', 'test/bench/pickle-vm-cases.ts', name]));
    if (name === 'cut-every-byte') {
      // thousands of inputs in one process: the budget applies to each, so it is the time per cut
      const perCutMs = (r.wallS * 1000) / CUTS;
      return {
        name: `pickle VM, ${what}`,
        value: `${perCutMs.toFixed(2)} ms per truncated input (${r.wallS.toFixed(1)} s in all), ${Math.round(r.maxRssMB)} MB`,
        target: `each input ≤ ${BUDGET_S} s and ≤ ${BUDGET_MB} MB`,
        pass: perCutMs <= BUDGET_S * 1000 && r.maxRssMB <= BUDGET_MB,
        detail: `runs ${r.runs.map((s) => s.toFixed(1)).join(', ')} s`,
      };
    }
    return {
      name: `pickle VM, ${what}`,
      value: `${r.wallS.toFixed(2)} s, ${Math.round(r.maxRssMB)} MB`,
      target: `≤ ${BUDGET_S} s and ≤ ${BUDGET_MB} MB, node start-up included`,
      pass: r.wallS <= BUDGET_S && r.maxRssMB <= BUDGET_MB,
      detail: `runs ${r.runs.map((s) => s.toFixed(2)).join(', ')} s`,
    };
  });
}
