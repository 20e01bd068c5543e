import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { crc32Implementation } from '../../main/io/crc32.ts';
import type { BenchResult } from './run.ts';
import { median, timed, type Sample } from './measure.ts';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);

/**
 * Issue 13 targets: consolidating a 2 GiB DeepSpeed ZeRO-3 checkpoint of 2 ranks into one torch
 * file peaks at ≤ 300 MB RSS and takes ≤ 1.3× `cat <rank files> > out && sync` (the same bytes
 * read once and written once). The folder is written by test/bench/make_zero3.py (stand-in
 * DeepSpeed classes under the real global names, the real layout). Page cache warm, runs interleaved, medians.
 * `sync` alone flushes every file's dirty pages, other programs' too, so `cat … > out && sync out`
 * (that file only, as ckpt's fsync) is measured beside it and shown in the detail. Both are
 * bound by CPU time on a loaded machine, so the load average is shown with the ratio.
 */
export function deepspeedBenchmarks(dir: string): BenchResult[] {
  const folder = join(dir, 'zero3_2gib');
  if (!existsSync(join(folder, 'latest'))) {
    rmSync(folder, { recursive: true, force: true });
    console.log('writing a 2 GiB ZeRO-3 checkpoint of 2 ranks...');
    const r = spawnSync('/usr/bin/python3', ['test/bench/make_zero3.py', folder], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('could not write the ZeRO-3 bench folder');
  }
  const rankFiles = ['model', 'optim'].flatMap((k) => [0, 1].map((r) => join(folder, 'global_step1000', `zero_pp_rank_${r}_mp_rank_00_${k}_states.pt`)));
  const out = join(dir, 'zero3-out.pt');
  const clean = (): void => {
    rmSync(out, { force: true });
    spawnSync('sync');
  };
  // the rank files were just written, or not read since: read them once so that no run (ours first) pays the cold cache
  timed(['sh', '-c', 'cat "$@" > /dev/null', 'sh', ...rankFiles]);
  const ours: Sample[] = [];
  const cat: Sample[] = [];
  const catFile: Sample[] = [];
  const catRanks = `cat ${rankFiles.map((f) => `'${f}'`).join(' ')} > '${out}'`;
  const loadBefore = loadavg()[0]!;
  for (let i = 0; i < RUNS; i++) {
    clean();
    ours.push(timed(['node', 'dist/ckpt.js', 'reshard', folder, '--to', 'single', '-o', out, '--json']));
    clean();
    cat.push(timed(['sh', '-c', `${catRanks} && sync`]));
    clean();
    catFile.push(timed(['sh', '-c', `${catRanks} && sync '${out}'`]));
  }
  clean();
  const load = `${availableParallelism()} cores, load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`;
  const s = (x: number): string => `${x.toFixed(2)} s`;
  const rss = Math.max(...ours.map((x) => x.maxRssMB));
  const wall = median(ours.map((x) => x.wallS));
  const peer = median(cat.map((x) => x.wallS));
  const peerFile = median(catFile.map((x) => x.wallS));
  return [
    {
      name: 'consolidate 2 GiB ZeRO-3 (2 ranks) → one torch file, peak RSS',
      value: `${rss.toFixed(0)} MB`,
      target: '≤ 300 MB',
      pass: rss <= 300,
      detail: `runs ${ours.map((x) => s(x.wallS)).join(', ')}`,
    },
    {
      name: 'consolidate 2 GiB ZeRO-3 → one file vs cat rank files > out && sync',
      value: `${(wall / peer).toFixed(2)}× (${s(wall)} vs ${s(peer)})`,
      target: '≤ 1.3×',
      pass: wall / peer <= 1.3,
      detail:
        `ours includes fsync and verification: one CRC pass while copying (each slice's CRC as read, combined into the record's CRC) and one over the file read back in a helper thread (CRC-32: ${crc32Implementation()}); ` +
        `runs ${ours.map((x) => s(x.wallS)).join(', ')}; cat && sync ${cat.map((x) => s(x.wallS)).join(', ')}; ` +
        `against cat && sync out (that file only): ${(wall / peerFile).toFixed(2)}× (${catFile.map((x) => s(x.wallS)).join(', ')}); ${load}`,
    },
  ];
}
