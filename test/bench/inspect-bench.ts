import { join } from 'node:path';
import type { BenchResult } from './run.ts';
import { repeat, timed } from './measure.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);

/** Issue 2 targets: inspect a 2 GiB state dict in ≤ 0.3 s and ≤ 150 MB RSS; 10,000 tensors in ≤ 0.5 s. */
export function inspectBenchmarks(dir: string): BenchResult[] {
  const big = join(dir, 'dp_2gib.pt');
  const many = join(dir, 'keys_10k.pt');
  const ckpt = (f: string) => () => timed(['node', 'dist/ckpt.js', 'inspect', f, '--json'], { env: { CKPT_BENCH: '1' } });
  const torchLoad = (f: string) => () => timed(['/usr/bin/python3', '-c', `import torch; torch.load(${JSON.stringify(f)}, map_location='cpu')`]);
  const bigCkpt = repeat(RUNS, ckpt(big));
  const bigTorch = repeat(Math.min(RUNS, 3), torchLoad(big));
  const manyCkpt = repeat(RUNS, ckpt(many));
  const manyTorch = repeat(Math.min(RUNS, 3), torchLoad(many));
  const s = (x: number): string => `${x.toFixed(3)} s`;
  return [
    {
      name: 'inspect 2 GiB DP state dict (CLI process wall, median)',
      value: s(bigCkpt.wallS),
      target: '≤ 0.300 s',
      pass: bigCkpt.wallS <= 0.3,
      detail: `torch.load in torch 1.13 (process wall, median): ${s(bigTorch.wallS)}; ratio ${(bigTorch.wallS / bigCkpt.wallS).toFixed(1)}x faster; runs ${bigCkpt.runs.map(s).join(', ')}`,
    },
    {
      name: 'inspect 2 GiB DP state dict, peak RSS',
      value: `${bigCkpt.maxRssMB.toFixed(0)} MB`,
      target: '≤ 150 MB',
      pass: bigCkpt.maxRssMB <= 150,
      detail: `torch.load peak RSS: ${bigTorch.maxRssMB.toFixed(0)} MB`,
    },
    {
      name: 'inspect 10,000-tensor checkpoint (CLI process wall, median)',
      value: s(manyCkpt.wallS),
      target: '≤ 0.500 s',
      pass: manyCkpt.wallS <= 0.5,
      detail: `torch.load: ${s(manyTorch.wallS)}; peak RSS ${manyCkpt.maxRssMB.toFixed(0)} MB`,
    },
  ];
}
