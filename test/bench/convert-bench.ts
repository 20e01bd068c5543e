import { spawnSync } from 'node:child_process';
import { linkSync, copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResult } from './run.ts';
import { median, timed, type Sample } from './measure.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);

/** Flushes dirty pages so one run's write-back does not land in the next run's time. */
function settle(): void {
  spawnSync('sync');
}

/**
 * Issue 3's lines, side by side in one run (runs interleaved, medians): convert a 2 GiB DP state
 * dict to cpu against cp and torch 1.13, ≤ 150 MB RSS; a 200-file batch with --jobs 2 against
 * --jobs 1. Issue 15 replaced the targets against cp, torch and --jobs 1 with the scale group's
 * (against cp && sync and torch 2.x, which every machine kind here can be held to): those
 * figures are shown for context (INFO).
 */
export function convertBenchmarks(dir: string): BenchResult[] {
  const src = join(dir, 'dp_2gib.pt');
  const out = join(dir, 'out.pt');
  const clean = (): void => {
    rmSync(out, { force: true });
    settle();
  };
  const ck: Sample[] = [];
  const cp: Sample[] = [];
  const cpSync: Sample[] = [];
  const torch: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    clean();
    ck.push(timed(['node', 'dist/ckpt.js', 'convert', src, '--preset', 'cpu', '-o', out, '--json']));
    clean();
    cp.push(timed(['cp', src, out]));
    clean();
    cpSync.push(timed(['sh', '-c', `cp "$0" "$1" && sync "$1"`, src, out]));
    if (i < Math.min(RUNS, 3)) {
      clean();
      torch.push(
        timed([
          '/usr/bin/python3',
          '-c',
          `import torch,sys; sd=torch.load(sys.argv[1], map_location='cpu'); sd={(k[7:] if k.startswith('module.') else k): v for k, v in sd.items()}; torch.save(sd, sys.argv[2])`,
          src,
          out,
        ]),
      );
    }
  }
  clean();
  const m = (xs: Sample[]): number => median(xs.map((x) => x.wallS));
  const ckW = m(ck),
    cpW = m(cp),
    cpsW = m(cpSync),
    tW = m(torch);
  const rss = Math.max(...ck.map((x) => x.maxRssMB));
  const s = (x: number): string => `${x.toFixed(2)} s`;

  // batch scaling: 200 DP checkpoints, --jobs 1 vs --jobs 2, interleaved. Beside them, the
  // machine's own ceiling for this workload: two independent ckpt processes, --jobs 1 each, over
  // one half of the files each (hard links), run at the same time.
  const batchScaling = (name: string): { b1: number; b2: number; two: number } => {
    const batchIn = join(dir, name);
    const halves = splitInHalves(batchIn);
    const batchOut = join(dir, 'batch-out');
    const j1: number[] = [];
    const j2: number[] = [];
    const two: number[] = [];
    const convertTo = (input: string, out: string): string => `node dist/ckpt.js convert "${input}" --preset cpu -o "${out}" --jobs 1 --json > /dev/null`;
    for (let i = 0; i < RUNS; i++) {
      for (const [jobs, into] of [
        [1, j1],
        [2, j2],
      ] as const) {
        rmSync(batchOut, { recursive: true, force: true });
        settle();
        into.push(timed(['node', 'dist/ckpt.js', 'convert', batchIn, '--preset', 'cpu', '-o', batchOut, '--jobs', String(jobs), '--json']).wallS);
      }
      rmSync(batchOut, { recursive: true, force: true });
      settle();
      two.push(timed(['sh', '-c', `${convertTo(halves[0], join(batchOut, 'a'))} & ${convertTo(halves[1], join(batchOut, 'b'))}; wait`]).wallS);
    }
    rmSync(batchOut, { recursive: true, force: true });
    return { b1: median(j1), b2: median(j2), two: median(two) };
  };
  const { b1, b2, two } = batchScaling('batch-2m');
  const small = batchScaling('batch-small');
  return [
    {
      name: 'convert 2 GiB DP → cpu, wall / cp wall (medians)',
      value: `${(ckW / cpW).toFixed(2)}×  (ckpt ${s(ckW)}, cp ${s(cpW)})`,
      target: "replaced by issue 15's line in the scale group",
      pass: false,
      info: true,
      detail: `ckpt fsyncs and verifies every byte; against cp + sync of the copy (${s(cpsW)}): ${(ckW / cpsW).toFixed(2)}×. runs: ckpt ${ck.map((x) => s(x.wallS)).join(', ')}; cp ${cp.map((x) => s(x.wallS)).join(', ')}`,
    },
    {
      name: 'convert 2 GiB DP → cpu vs torch load + strip + save',
      value: `${(tW / ckW).toFixed(1)}× faster  (torch ${s(tW)})`,
      target: "replaced by issue 15's line in the scale group",
      pass: false,
      info: true,
      detail: `torch peak RSS ${Math.max(...torch.map((x) => x.maxRssMB)).toFixed(0)} MB`,
    },
    { name: 'convert 2 GiB DP → cpu, peak RSS', value: `${rss.toFixed(0)} MB`, target: '≤ 150 MB', pass: rss <= 150 },
    {
      name: 'batch of 200 × 2 MiB checkpoints, --jobs 2 vs --jobs 1',
      value: `${(b1 / b2).toFixed(2)}×  (${s(b2)} vs ${s(b1)})`,
      target: "replaced by issue 15's line in the scale group (2 cores)",
      pass: false,
      info: true,
      detail: `ceiling on this machine, two independent processes with half the files each: ${(b1 / two).toFixed(2)}× (${s(two)}). 200 × 130 KB files: --jobs 2 ${(small.b1 / small.b2).toFixed(2)}× (${s(small.b2)} vs ${s(small.b1)}), two processes ${(small.b1 / small.two).toFixed(2)}× (${s(small.two)})`,
    },
  ];
}

/** Hard links to the even- and odd-numbered files of a folder, in `<folder>-halves/{a,b}`. */
function splitInHalves(folder: string): [string, string] {
  const root = `${folder}-halves`;
  rmSync(root, { recursive: true, force: true });
  const halves: [string, string] = [join(root, 'a'), join(root, 'b')];
  halves.forEach((h) => mkdirSync(h, { recursive: true }));
  readdirSync(folder)
    .sort()
    .forEach((f, i) => {
      const to = join(halves[i % 2]!, f);
      try {
        linkSync(join(folder, f), to);
      } catch {
        copyFileSync(join(folder, f), to);
      }
    });
  return halves;
}
