import { spawnSync } from 'node:child_process';
import type { VerifyReport } from '../../shared/verify.ts';
import type { BenchResult } from './run.ts';
import { median, timed } from './measure.ts';
import { SAMPLE, sampleVerifyArgs } from './verify-bench.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const PYTHON = process.env['BENCH_PYTHON'] ?? '/usr/bin/python3';

/**
 * The plain torch eval loop the runner replaces, in the same interpreter: both checkpoints into
 * DigitsCNN with weights_only and strict loading, the same test split already in memory, batches of
 * 64 through both models, as `ckpt verify --model-class` does. Prints images/s of the one pass over
 * the test set (both models' images counted), cold, as the runner's one pass is: the first forward
 * of a fresh process pays torch's kernel initialisation in both.
 */
const TORCH_LOOP = `
import sys, time, numpy as np, torch
sys.path.insert(0, '${SAMPLE}'); sys.dont_write_bytecode = True
from digits_model import DigitsCNN
x = torch.from_numpy(np.load('${SAMPLE}/digits-test.npz')['x'])
models = []
for f in ['dp.pt', 'cpu.pt']:
    sd = torch.load('${SAMPLE}/' + f, weights_only=True, map_location='cpu')
    m = DigitsCNN(); m.load_state_dict({k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}, strict=True); m.eval(); models.append(m)
def loop():
    out = [[], []]
    with torch.no_grad():
        for i in range(0, len(x), 64):
            for j, m in enumerate(models):
                out[j].append(m(x[i:i + 64]))
    return out
t = time.perf_counter(); loop(); first = time.perf_counter() - t
print(2 * len(x) / first)
`;

/**
 * Issue 12: \`ckpt verify --model-class\` throughput against a plain torch eval loop over the same
 * test set in the same interpreter (target: the runner within 1.2×), with the start-up overhead
 * (spawning the interpreter and importing torch) reported on its own, against \`python -c 'import torch'\`.
 */
export function verifyPythonBenchmarks(): BenchResult[] {
  const ours: number[] = [];
  const theirs: number[] = [];
  const startup: number[] = [];
  const importTorch: number[] = [];
  const args = sampleVerifyArgs('--python', PYTHON, '--model-class', `${SAMPLE}/digits_model.py:DigitsCNN`);
  for (let i = 0; i < RUNS; i++) {
    const r = spawnSync('node', args, { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`ckpt verify --model-class failed (${r.status}): ${r.stderr}`);
    const rep = JSON.parse(r.stdout) as VerifyReport;
    ours.push((2 * rep.data.samples) / rep.python!.loopSeconds);
    startup.push(rep.python!.startupSeconds);
    const p = spawnSync(PYTHON, ['-c', TORCH_LOOP], { encoding: 'utf8' });
    if (p.status !== 0) throw new Error(`torch eval loop failed: ${p.stderr}`);
    theirs.push(Number(p.stdout.trim()));
    importTorch.push(timed([PYTHON, '-c', 'import torch']).wallS);
  }
  const o = median(ours);
  const t = median(theirs);
  const ips = (x: number): string => `${Math.round(x).toLocaleString('en-US')} images/s`;
  return [
    {
      name: 'verify --model-class batch loop vs a plain torch eval loop, same interpreter (DigitsCNN, 2 checkpoints, batches of 64)',
      value: `${ips(o)} vs ${ips(t)} (torch ${(t / o).toFixed(2)}× faster)`,
      target: 'torch ≤ 1.2× faster',
      pass: t / o <= 1.2,
      detail: `the runner's loop: from both models loaded to the last logits scored in Node, the transfers over stdin/stdout included (the test set, one 8 MB chunk here, is preprocessed while the checkpoints load, as the torch loop's is before its clock starts). runs: ckpt ${ours.map((x) => Math.round(x)).join(', ')}; torch ${theirs.map((x) => Math.round(x)).join(', ')}`,
    },
    {
      name: 'verify --model-class start-up (spawn the interpreter, import torch, protocol hello) vs python -c "import torch"',
      value: `${median(startup).toFixed(2)} s vs ${median(importTorch).toFixed(2)} s`,
      target: 'reported',
      pass: true,
      detail: `runs: runner ${startup.map((x) => x.toFixed(2)).join(', ')}; import torch ${importTorch.map((x) => x.toFixed(2)).join(', ')}`,
    },
  ];
}
