import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { VerifyReport } from '../../shared/verify.ts';
import type { BenchResult } from './run.ts';
import { median, timed } from './measure.ts';
import { SAMPLE } from './verify-bench.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const PYTHON = process.env['BENCH_PYTHON'] ?? '/usr/bin/python3';

/** One model and test set both sides run: the checkpoints dp.pt (DataParallel keys) and cpu.pt in `dir`. */
interface Case {
  what: string;
  dir: string;
  data: string;
  modelFile: string;
  modelClass: string;
}

/**
 * The plain torch eval loop the runner replaces, in the same interpreter: both checkpoints into the
 * class with weights_only and strict loading, the test set already in memory, batches of 64 through
 * both models, as `ckpt verify --model-class` does. Prints milliseconds of the one pass over the test
 * set, cold, as the runner's one pass is: the first forward of a fresh process pays torch's kernel
 * initialisation in both.
 */
function torchLoop(c: Case): string {
  const [folder, file] = [c.modelFile.slice(0, c.modelFile.lastIndexOf('/')), c.modelFile.slice(c.modelFile.lastIndexOf('/') + 1, -3)];
  return `
import sys, time, numpy as np, torch
sys.path.insert(0, '${folder}'); sys.dont_write_bytecode = True
from ${file} import ${c.modelClass}
x = torch.from_numpy(np.load('${c.data}')['x'])
models = []
for f in ['dp.pt', 'cpu.pt']:
    sd = torch.load('${c.dir}/' + f, weights_only=True, map_location='cpu')
    m = ${c.modelClass}(); m.load_state_dict({k[7:] if k.startswith('module.') else k: v for k, v in sd.items()}, strict=True); m.eval(); models.append(m)
def loop():
    out = [[], []]
    with torch.no_grad():
        for i in range(0, len(x), 64):
            for j, m in enumerate(models):
                out[j].append(m(x[i:i + 64]))
    return out
t = time.perf_counter(); loop(); first = time.perf_counter() - t
print(first * 1000)
`;
}

interface Sides {
  samples: number;
  /** the runner's loop and the torch loop, ms, one pair per run */
  ours: number[];
  theirs: number[];
  startup: number[];
  load: number[];
  wall: number[];
}

/** One run of each side, interleaved. */
function runBoth(c: Case, into: Sides): void {
  const args = ['dist/ckpt.js', 'verify', '--python', PYTHON, '--model-class', `${c.modelFile}:${c.modelClass}`, '--data', c.data];
  const t = performance.now();
  const r = spawnSync('node', [...args, join(c.dir, 'dp.pt'), '--against', join(c.dir, 'cpu.pt'), '--device', 'cpu', '--json'], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  into.wall.push((performance.now() - t) / 1000);
  if (r.status !== 0) throw new Error(`ckpt verify --model-class on ${c.data} failed (${r.status}): ${r.stderr}`);
  const rep = JSON.parse(r.stdout) as VerifyReport;
  if (rep.verdict !== 'PASS') throw new Error(`ckpt verify --model-class on ${c.data}: ${rep.verdict}, expected PASS: ${rep.reasons.join('; ')}`);
  into.samples = rep.data.samples;
  into.ours.push(rep.python!.loopSeconds * 1000);
  into.startup.push(rep.python!.startupSeconds);
  into.load.push(rep.python!.loadSeconds);
  const p = spawnSync(PYTHON, ['-c', torchLoop(c)], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`torch eval loop failed: ${p.stderr}`);
  into.theirs.push(Number(p.stdout.trim()));
}

const ips = (samples: number, ms: number): string => `${Math.round((2 * samples) / (ms / 1000)).toLocaleString('en-US')} images/s`;
const list = (xs: number[], digits = 0): string => xs.map((x) => x.toFixed(digits)).join(', ');

/**
 * Issue 12: \`ckpt verify --model-class\` throughput against a plain torch eval loop over the same
 * test set in the same interpreter (target: the runner within 1.2×), on CIFAR-size samples (5,000,
 * from make-files.py) where throughput shows, and on the sample workspace's 360 digits where the
 * loop is a few milliseconds and the runner's fixed hand-off cost shows; with the start-up overhead
 * (spawning the interpreter and importing torch) reported on its own, against \`python -c 'import os, torch; os._exit(0)'\`.
 */
export function verifyPythonBenchmarks(dir: string): BenchResult[] {
  const cifar: Case = {
    what: 'CifarBenchCNN, 5,000 CIFAR-size samples',
    dir: join(dir, 'verify-cifar'),
    data: join(dir, 'verify-cifar', 'test_5000.npz'),
    modelFile: 'test/bench/cifar_bench_model.py',
    modelClass: 'CifarBenchCNN',
  };
  const digits: Case = {
    what: 'DigitsCNN, the sample workspace 360 8×8 digits',
    dir: SAMPLE,
    data: `${SAMPLE}/digits-test.npz`,
    modelFile: `${SAMPLE}/digits_model.py`,
    modelClass: 'DigitsCNN',
  };
  const fresh = (): Sides => ({ samples: 0, ours: [], theirs: [], startup: [], load: [], wall: [] });
  const big = fresh();
  const small = fresh();
  const importTorch: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    runBoth(cifar, big);
    runBoth(digits, small);
    // the same work as the runner's start-up: spawn, import torch, answer; os._exit leaves out the
    // interpreter's teardown with torch loaded, which the runner's start-up does not include either
    importTorch.push(timed([PYTHON, '-c', 'import os, torch; os._exit(0)']).wallS);
  }
  const line = (c: Case, s: Sides, note: string): BenchResult => {
    const [o, t] = [median(s.ours), median(s.theirs)];
    return {
      name: `verify --model-class loop vs a plain torch eval loop, same interpreter (${c.what}, 2 checkpoints, batches of 64)`,
      value: `${ips(s.samples, o)} vs ${ips(s.samples, t)} (${o.toFixed(1)} ms vs ${t.toFixed(1)} ms: torch ${(o / t).toFixed(2)}× faster)`,
      target: 'torch ≤ 1.2× faster',
      pass: o / t <= 1.2,
      detail: `${note} runs (ms): ckpt ${list(s.ours, 1)}; torch ${list(s.theirs, 1)}`,
    };
  };
  const fixed = median(small.ours) - median(small.theirs);
  return [
    line(
      cifar,
      big,
      "the runner's loop: from both models loaded to the last logits scored in Node, the samples' reading, transfers over stdin/stdout and scoring included (the first chunk is read and sent to the runner while the checkpoints load, as the torch loop's test set is in memory before its clock starts).",
    ),
    line(
      digits,
      small,
      `one 92 KB chunk, sent while the last checkpoint loads: the loop is a few milliseconds, so the runner's fixed cost per verification (the logits across the pipe, the batches left to score in Node after the last forward; ${fixed.toFixed(1)} ms over the torch loop, medians) weighs as much as the forward passes.`,
    ),
    {
      name: 'verify --model-class start-up (spawn the interpreter, import torch, protocol hello) vs python -c "import torch" (exiting at once)',
      value: `${median(small.startup.concat(big.startup)).toFixed(2)} s vs ${median(importTorch).toFixed(2)} s`,
      target: 'reported',
      pass: true,
      detail: `runs: runner ${list(small.startup.concat(big.startup), 2)}; import torch ${list(importTorch, 2)}. Then loading both checkpoints into the class: median ${median(small.load).toFixed(2)} s (digits), ${median(big.load).toFixed(2)} s (CIFAR); whole ckpt verify process: median ${median(small.wall).toFixed(2)} s (digits), ${median(big.wall).toFixed(2)} s (CIFAR)`,
    },
  ];
}
