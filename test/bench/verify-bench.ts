import { spawnSync } from 'node:child_process';
import type { BenchResult } from './run.ts';
import { median, timed } from './measure.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
export const SAMPLE = 'build/sample-workspace/digits-cnn';

/** `ckpt verify` of the sample's dp.pt against its cpu.pt on its test set, the model from `architecture`. */
export function sampleVerifyArgs(...architecture: string[]): string[] {
  const run = [`${SAMPLE}/dp.pt`, '--against', `${SAMPLE}/cpu.pt`, '--device', 'cpu', '--json'];
  return ['dist/ckpt.js', 'verify', ...architecture, '--data', `${SAMPLE}/digits-test.npz`, ...run];
}

/**
 * The same work in torch 1.13 on the CPU: both checkpoints into DigitsCNN, eval mode, the test split
 * in batches of 64, logits compared. With argument N > 0 it then prints the steady-state inference
 * throughput (median of N timed passes over the 360 images, after the first untimed pass).
 */
const TORCH = `
import sys, time, numpy as np, torch
sys.path.insert(0, '${SAMPLE}'); sys.dont_write_bytecode = True
from digits_model import DigitsCNN
x = torch.from_numpy(np.load('${SAMPLE}/digits-test.npz')['x'])
models = []
for f in ['cpu.pt', 'dp.pt']:
    sd = torch.load('${SAMPLE}/' + f, map_location='cpu')
    m = DigitsCNN(); m.load_state_dict({k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}); m.eval(); models.append(m)
def run(m):
    with torch.no_grad():
        return torch.cat([m(x[i:i + 64]) for i in range(0, len(x), 64)])
a, b = run(models[0]), run(models[1])
assert torch.equal(a, b)
passes = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); run(models[0]); passes.append(time.perf_counter() - t)
print(len(x) / float(np.median(passes)) if passes else 0)
`;

/**
 * Issue 6: inference throughput on the sample (360 8×8 digits, batches of 64) of `ckpt verify`
 * (onnxruntime CPU, timed around session.run) against torch CPU eval of the same model, and the wall
 * time of the whole verification (source and converted checkpoint, same graph and batches) against
 * the same work in a torch script. Runs interleaved, medians.
 */
export function verifyBenchmarks(): BenchResult[] {
  const ours: number[] = [];
  const oursWall: number[] = [];
  const theirs: number[] = [];
  const theirsWall: number[] = [];
  const args = sampleVerifyArgs('--model', `${SAMPLE}/model.onnx`);
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = spawnSync('node', args, { encoding: 'utf8', maxBuffer: 1 << 26 });
    oursWall.push((performance.now() - t) / 1000);
    if (r.status !== 0) throw new Error(`ckpt verify failed (${r.status}): ${r.stderr}`);
    const rep = JSON.parse(r.stdout) as { runs: { imagesPerSecond: number }[] };
    ours.push(median(rep.runs.map((x) => x.imagesPerSecond)));
    const p = spawnSync('/usr/bin/python3', ['-c', TORCH, '50'], { encoding: 'utf8' });
    if (p.status !== 0) throw new Error(`torch eval failed: ${p.stderr}`);
    theirs.push(Number(p.stdout.trim()));
    theirsWall.push(timed(['/usr/bin/python3', '-c', TORCH, '0']).wallS);
  }
  const o = median(ours);
  const t = median(theirs);
  const ow = median(oursWall);
  const tw = median(theirsWall);
  const ips = (x: number): string => `${Math.round(x).toLocaleString('en-US')} images/s`;
  return [
    {
      name: 'verify inference throughput, onnxruntime CPU vs torch CPU eval (DigitsCNN, batches of 64)',
      value: `${ips(o)} vs ${ips(t)} (${(o / t).toFixed(2)}×)`,
      target: '≥ 1× torch',
      pass: o >= t,
      detail: `runs: ckpt ${ours.map((x) => Math.round(x)).join(', ')}; torch ${theirs.map((x) => Math.round(x)).join(', ')}`,
    },
    {
      name: 'ckpt verify, 2 checkpoints × 360 samples, process wall vs the same in a torch script',
      value: `${ow.toFixed(2)} s vs ${tw.toFixed(2)} s`,
      target: '≤ torch script',
      pass: ow <= tw,
      detail: `ckpt: node start, worker thread, onnxruntime load, 2 checkpoints read and bound, 2 sessions, 12 batches and the report; torch: python start, import torch, 2 checkpoints, 12 batches. runs: ckpt ${oursWall.map((x) => x.toFixed(2)).join(', ')}; torch ${theirsWall.map((x) => x.toFixed(2)).join(', ')}`,
    },
  ];
}
