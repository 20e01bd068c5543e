import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDcpFolder } from '../../main/formats/dcp/dcp.ts';
import type { BenchResult } from './run.ts';
import { median, timed, type Sample } from './measure.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const TORCH2 = '.venv-torch2/bin/python';

/**
 * A 2 GiB DCP folder written by real torch 2.x: a 2-rank gloo run saving 32 DTensors of 64 MiB,
 * each Shard(0) over the 2 ranks, so every tensor is assembled from a chunk in each data file.
 */
const MAKE_DCP = String.raw`
import os, sys, tempfile
import torch, torch.distributed as dist, torch.multiprocessing as mp
def work(rank, world, init, out):
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard
    mesh = init_device_mesh("cpu", (world,))
    torch.manual_seed(rank)
    sd = {f"layers.{i}.weight": DTensor.from_local(torch.randn(4096 // world, 4096), mesh, [Shard(0)]) for i in range(32)}
    dcp.save({"model": sd, "step": 1000}, checkpoint_id=out)
    dist.destroy_process_group()
if __name__ == "__main__":
    init = os.path.join(tempfile.mkdtemp(), "rdzv")
    mp.start_processes(work, args=(2, init, sys.argv[1]), nprocs=2, start_method="spawn")
`;

function settle(): void {
  spawnSync('sync');
}

/**
 * Issue 7 target: merging a 2 GiB DCP folder into one torch file peaks at ≤ 300 MB RSS (every
 * tensor is assembled from its chunks while it streams; nothing is held whole). Side by side:
 * the same folder through `ckpt convert` (the converter's writer over the virtual checkpoint),
 * and torch's own `dcp_to_torch_save`, which loads the whole state dict.
 */
export function reshardBenchmarks(dir: string): BenchResult[] {
  const folder = join(dir, 'dcp_2gib');
  let madeBy = 'torch 2.x (2-rank gloo, DTensor Shard(0))';
  if (!isDcpFolder(folder)) {
    rmSync(folder, { recursive: true, force: true });
    if (existsSync(TORCH2)) {
      console.log('writing a 2 GiB DCP folder with torch 2.x (2 gloo ranks)...');
      const script = join(dir, 'make_dcp.py'); // spawned workers import their function from a file
      writeFileSync(script, MAKE_DCP);
      const r = spawnSync(TORCH2, [script, folder], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('torch 2.x could not write the DCP bench folder');
    } else {
      madeBy = 'ckpt reshard dp_2gib.pt --to dcp:2 (no torch 2.x venv here)';
      const r = spawnSync('node', ['dist/ckpt.js', 'reshard', join(dir, 'dp_2gib.pt'), '--to', 'dcp:2', '-o', folder, '--json'], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error('could not write the DCP bench folder');
    }
  }
  const out = join(dir, 'reshard-out.pt');
  const clean = (): void => {
    rmSync(out, { force: true });
    settle();
  };
  const merge: Sample[] = [];
  const convert: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    clean();
    merge.push(timed(['node', 'dist/ckpt.js', 'reshard', folder, '--to', 'single', '-o', out, '--json']));
    clean();
    convert.push(timed(['node', 'dist/ckpt.js', 'convert', folder, '--preset', 'cpu', '-o', out, '--json']));
  }
  // the other direction, streaming too: the 2 GiB DP state dict split into a DCP folder and into shards
  // RUNS each, interleaved: single runs on this disk swing by 2× (first write after a delete)
  const split = new Map<string, Sample[]>();
  for (let i = 0; i < RUNS; i++) {
    for (const [what, args] of [
      ['dcp:2', ['--to', 'dcp:2']],
      ['safetensors shards of 500MB', ['--to', 'shards:500MB']],
    ] as const) {
      const o = join(dir, 'reshard-split');
      rmSync(o, { recursive: true, force: true });
      settle();
      split.set(what, [...(split.get(what) ?? []), timed(['node', 'dist/ckpt.js', 'reshard', join(dir, 'dp_2gib.pt'), ...args, '-o', o, '--json'])]);
      rmSync(o, { recursive: true, force: true });
    }
  }
  let torch: Sample | null = null;
  if (existsSync(TORCH2)) {
    clean();
    torch = timed([
      TORCH2,
      '-c',
      'import sys; from torch.distributed.checkpoint.format_utils import dcp_to_torch_save as f; f(sys.argv[1], sys.argv[2])',
      folder,
      out,
    ]);
  }
  clean();
  const rss = Math.max(...merge.map((s) => s.maxRssMB));
  const crss = Math.max(...convert.map((s) => s.maxRssMB));
  const wall = median(merge.map((s) => s.wallS));
  const s = (x: number): string => `${x.toFixed(2)} s`;
  const results: BenchResult[] = [
    {
      name: 'reshard 2 GiB DCP folder → single, peak RSS',
      value: `${rss.toFixed(0)} MB`,
      target: '≤ 300 MB',
      pass: rss <= 300,
      detail: `folder written by ${madeBy}; ${s(wall)} median wall incl. verification (output read back; every piece cut back out of it and matched with its source bytes); runs ${merge.map((x) => s(x.wallS)).join(', ')}`,
    },
    {
      name: 'convert 2 GiB DCP folder → cpu, peak RSS',
      value: `${crss.toFixed(0)} MB`,
      target: '≤ 300 MB',
      pass: crss <= 300,
      detail: `${s(median(convert.map((x) => x.wallS)))} median wall`,
    },
  ];
  for (const [what, xs] of split) {
    const peak = Math.max(...xs.map((x) => x.maxRssMB));
    results.push({
      name: `reshard 2 GiB DP file → ${what}, peak RSS`,
      value: `${peak.toFixed(0)} MB`,
      target: '≤ 300 MB',
      pass: peak <= 300,
      detail: `${s(median(xs.map((x) => x.wallS)))} median wall incl. verification; runs ${xs.map((x) => s(x.wallS)).join(', ')}`,
    });
  }
  if (torch)
    results.push({
      name: 'reshard DCP → single vs torch dcp_to_torch_save',
      value: `${(torch.wallS / wall).toFixed(1)}× the speed, ${(torch.maxRssMB / rss).toFixed(0)}× less memory`,
      target: 'none: shown for context',
      pass: false,
      info: true,
      detail: `torch ${s(torch.wallS)}, peak RSS ${torch.maxRssMB.toFixed(0)} MB`,
    });
  return results;
}
