// One process: the 100,000-tensor checkpoint's data.pkl unpickled (security scan riding along)
// with the item reader (main/formats/torch/fast-items.ts) and by the VM alone, interleaved;
// prints the medians as JSON. Run by unpickle-bench.ts: `node --import tsx test/bench/unpickle-ab.ts FILE RUNS`.
import { PerformanceObserver } from 'node:perf_hooks';
import { openTorchArchive, PrescannedPickles, StorageTable, unpickleRecord } from '../../main/formats/torch/torch-zip.ts';
import { FileReader } from '../../main/io/random-access.ts';
import { median } from './measure.ts';

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });
const pause = (): Promise<unknown> => new Promise((r) => setTimeout(r, 30));

const [file, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 5);
const figures = { fast: { cpuMs: [] as number[], gcMs: [] as number[] }, vm: { cpuMs: [] as number[], gcMs: [] as number[] } };
for (let i = 0; i < 2 * runs + 2; i++) {
  const way = i % 2 ? 'vm' : 'fast';
  const archive = openTorchArchive(new FileReader(file!));
  await pause();
  const gc0 = gcMs;
  const cpu0 = process.cpuUsage();
  unpickleRecord(archive, 'data.pkl', new StorageTable(), 'data/', new PrescannedPickles(), way === 'fast');
  const cpu = process.cpuUsage(cpu0);
  await pause(); // the collections the read left due happen before the next one starts
  archive.zip.reader.close();
  if (i < 2) continue; // one warm-up each
  figures[way].cpuMs.push((cpu.user + cpu.system) / 1000);
  figures[way].gcMs.push(gcMs - gc0);
}
console.log(
  JSON.stringify({
    fast: { cpuMs: median(figures.fast.cpuMs), gcMs: median(figures.fast.gcMs), runs: figures.fast.cpuMs },
    vm: { cpuMs: median(figures.vm.cpuMs), gcMs: median(figures.vm.gcMs), runs: figures.vm.cpuMs },
  }),
);
