import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BatchPlanItem, BatchSummary } from '../../shared/api.ts';
import type { ConversionReport } from '../../shared/convert.ts';
import type { ErrorInfo } from '../../shared/errors.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { asCheckpointError, fail } from '../errors.ts';
import type { WorkerPool } from './pool.ts';
import { staleTempFiles, syncDir } from '../io/atomic-file.ts';
import { findCheckpoints, groupFamilies, type FileGroup } from '../inputs/discover.ts';
import { outputFiles } from '../convert/plan.ts';
import { isDcpFolder } from '../formats/dcp/dcp.ts';
import { isDeepSpeedFolder } from '../formats/deepspeed/locate.ts';

/**
 * Converting a folder: every checkpoint under it (found by content), written to the same
 * relative place under the output folder, in a pool of worker threads. A failing file does not
 * stop the batch; a killed batch resumes from a manifest of outputs already written and verified.
 */
export interface BatchOptions {
  input: string;
  outDir: string;
  rules: ConversionRules;
  force: boolean;
  /** `--shard I/N`: this run takes files whose stable hash falls in share I of N (1-based) */
  shard?: { index: number; count: number };
  signal?: AbortSignal;
  onEvent?(e: BatchEvent): void;
}

export type BatchItem = BatchPlanItem;
export type ItemStatus = BatchPlanItem['status'];

export type BatchEvent =
  | { type: 'plan'; items: BatchItem[]; ignored: number; totalBytes: number }
  | { type: 'start'; id: number }
  | { type: 'progress'; id: number; done: number; total: number; overallDone: number; overallTotal: number }
  | { type: 'item'; item: BatchItem }
  | { type: 'finished'; summary: BatchSummary };


export type { BatchSummary };

export const MANIFEST = '.ckpt-batch.json';

interface ManifestEntry { source: string; size: number; mtimeMs: number; outputs: { file: string; size: number }[]; rules: string; verified: true }
interface Manifest { version: 1; entries: Record<string, ManifestEntry> }

/** A stable share of the work for `--shard I/N`, the same on every node of a job array. */
export function inShard(key: string, shard: { index: number; count: number } | undefined): boolean {
  if (!shard) return true;
  const h = createHash('sha1').update(key).digest().readUInt32BE(0);
  return h % shard.count === shard.index - 1;
}

export function planBatch(opts: BatchOptions): { items: BatchItem[]; ignored: number; units: Unit[] } {
  const input = path.resolve(opts.input);
  const out = path.resolve(opts.outDir);
  if (out === input) fail('usage', `the output folder must differ from the input folder (${opts.input}); nothing is ever converted in place`);
  const { files, ignored } = findCheckpoints(input, out);
  const groups = groupFamilies(files).filter((g) => inShard(g.files[0]!, opts.shard));
  const manifest = readManifest(out);
  const rulesKey = JSON.stringify(opts.rules);
  const items: BatchItem[] = [];
  const units: Unit[] = [];
  for (const g of groups) {
    for (const unit of unitsOf(g, opts.rules, input)) {
      units.push(unit);
      const outputs = outputFiles(unit.source, unit.output, unit.rules).map((o) => o.file);
      const st = sourceStamp(path.join(input, unit.source));
      const item: BatchItem = { id: items.length, sources: unit.sources, family: g.family, outputs, bytes: st.size, status: 'pending' };
      const m = manifest.entries[unit.source];
      if (m && m.rules === rulesKey && m.size === st.size && m.mtimeMs === st.mtimeMs && m.outputs.every((o) => fileSize(path.join(out, o.file)) === o.size)) {
        item.status = 'skipped';
        item.reason = 'already converted and verified (resumed)';
        item.verified = true;
      }
      items.push(item);
    }
  }
  return { items, ignored, units };
}

interface Unit { source: string; sources: string[]; output: string; rules: ConversionRules }

/**
 * How a group becomes conversion units. A per-rank family under `ddp` keeps one file per rank,
 * rank r on cuda:r; under cpu/gpu/dp the ranks of a DDP run are copies, so rank 0 is converted to
 * the family's name without the rank (the identity of the copies is checked by `ckpt reshard`).
 */
function unitsOf(g: FileGroup, rules: ConversionRules, input: string): Unit[] {
  if (!g.family) {
    const f = g.files[0]!;
    // a DCP folder becomes one file beside where the folder was: step100/ → step100.pt
    return [{ source: f, sources: g.files, output: isDcpFolder(path.join(input, f)) || isDeepSpeedFolder(path.join(input, f)) ? `${f}.pt` : f, rules }];
  }
  if (rules.preset?.name === 'ddp') {
    return g.files.map((f, r) => ({ source: f, sources: [f], output: f, rules: { ...rules, preset: { name: 'ddp', worldSize: 1 }, mapLocation: [{ from: '*', to: `cuda:${r}` }, ...rules.mapLocation] } }));
  }
  return [{ source: g.files[0]!, sources: g.files, output: g.mergedName!, rules }];
}

export async function runBatch(opts: BatchOptions, pool: WorkerPool): Promise<BatchSummary> {
  const t0 = performance.now();
  const input = path.resolve(opts.input);
  const out = path.resolve(opts.outDir);
  const { items, ignored, units } = planBatch(opts);
  // temporary files a killed earlier run left beside any output of this batch, subfolders included
  const outputFolders = new Set([out, ...items.flatMap((i) => i.outputs.map((o) => path.dirname(path.join(out, o))))]);
  for (const dir of outputFolders) for (const f of staleTempFiles(dir)) fs.rmSync(f, { force: true });
  const totalBytes = items.filter((i) => i.status === 'pending').reduce((a, i) => a + i.bytes, 0);
  opts.onEvent?.({ type: 'plan', items, ignored, totalBytes });
  const manifest = readManifest(out);
  const rulesKey = JSON.stringify(opts.rules);
  let overallDone = 0;
  // The manifest is rewritten at most once a second (and at the end): it only lets a rerun skip
  // work, so losing its last second to a crash costs a little repeated work, never a wrong file.
  let lastSave = 0;
  let dirty = false;
  const saveManifest = (final: boolean): void => {
    dirty = dirty || !final;
    if (!dirty || (!final && performance.now() - lastSave < 1000)) return;
    writeManifest(out, manifest);
    lastSave = performance.now();
    dirty = false;
  };
  const convertItem = async (item: BatchItem): Promise<void> => {
    const unit = units[item.id]!;
    const src = path.join(input, unit.source);
    let lastDone = 0;
    const convert = async (source: string, output: string, share: number): Promise<ConversionReport> => {
      const base = lastDone;
      return pool.run({ kind: 'convert', source: path.join(input, source), output: path.join(out, output), rules: unit.rules, force: opts.force, syncFolder: false }, {
        ...(opts.signal ? { signal: opts.signal } : {}),
        onProgress: (p) => {
          if (lastDone === 0) opts.onEvent?.({ type: 'start', id: item.id });
          const scaled = base + (p.total ? (p.done / p.total) * share : 0);
          overallDone += scaled - lastDone;
          lastDone = scaled;
          opts.onEvent?.({ type: 'progress', id: item.id, done: p.done, total: p.total, overallDone, overallTotal: totalBytes });
        },
      });
    };
    try {
      item.status = 'running';
      const reports: ConversionReport[] = [];
      if (unit.sources.length > 1) {
        // A family merges into one file only when its ranks are copies; otherwise each rank is
        // converted on its own and the report says which tensors differ.
        const cmp = await pool.run({ kind: 'compare-ranks', files: unit.sources.map((f) => path.join(input, f)) }, opts.signal ? { signal: opts.signal } : {});
        if (!cmp.identical) {
          item.outputs = unit.sources;
          const shown = cmp.differing.slice(0, 3).join(', ') + (cmp.differing.length > 3 ? ', …' : '');
          item.reason = `ranks differ in ${cmp.differing.length} of ${cmp.tensors} tensors (${shown}): not merged, each rank converted on its own`;
          for (const f of unit.sources) reports.push(await convert(f, f, item.bytes / unit.sources.length));
        }
      }
      if (!reports.length) reports.push(await convert(unit.source, unit.output, item.bytes));
      overallDone += item.bytes - lastDone;
      item.seconds = reports.reduce((a, r) => a + r.seconds, 0);
      item.verified = reports.every((r) => r.verified);
      if (!item.verified) {
        item.status = 'failed';
        item.reason = `verification failed: ${reports.flatMap((r) => r.outputs).find((o) => !o.verified)?.mismatch}`;
      } else {
        item.status = 'done';
        const st = sourceStamp(src);
        manifest.entries[unit.source] = { source: unit.source, size: st.size, mtimeMs: st.mtimeMs, rules: rulesKey, verified: true, outputs: item.outputs.map((f) => ({ file: f, size: fs.statSync(path.join(out, f)).size })) };
        saveManifest(false);
      }
    } catch (e) {
      const err: ErrorInfo = asCheckpointError(e, src).toInfo();
      item.status = err.kind === 'cancelled' ? 'cancelled' : 'failed';
      item.reason = err.message;
    }
    opts.onEvent?.({ type: 'item', item });
  };
  // Items go to the pool a few at a time: enough to keep every worker busy, few enough that a
  // 10,000-file batch does not queue 10,000 jobs (each with a listener on the cancel signal).
  const pending = items.filter((i) => i.status === 'pending');
  let next = 0;
  const feed = async (): Promise<void> => {
    while (next < pending.length) await convertItem(pending[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(pending.length, pool.size * 2) }, feed));
  saveManifest(true);
  // Each output was fsynced before its rename; one fsync per folder makes the renames durable.
  for (const dir of new Set(items.filter((i) => i.status === 'done').flatMap((i) => i.outputs.map((o) => path.dirname(path.join(out, o)))))) syncDir(dir);
  const count = (s: ItemStatus): number => items.filter((i) => i.status === s).length;
  const summary: BatchSummary = { items, done: count('done'), skipped: count('skipped'), failed: count('failed'), cancelled: count('cancelled'), bytes: totalBytes, seconds: (performance.now() - t0) / 1000 };
  opts.onEvent?.({ type: 'finished', summary });
  return summary;
}

function readManifest(outDir: string): Manifest {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(outDir, MANIFEST), 'utf8')) as Manifest;
    if (m.version === 1 && m.entries) return m;
  } catch { /* none yet, or unreadable: start over */ }
  return { version: 1, entries: {} };
}

function writeManifest(outDir: string, m: Manifest): void {
  const file = path.join(outDir, MANIFEST);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(tmp, JSON.stringify(m, null, 1));
  fs.renameSync(tmp, file);
}

function fileSize(f: string): number {
  try {
    return fs.statSync(f).size;
  } catch {
    return -1;
  }
}

/** Size and modification time of a source; for a DCP folder, the sum and the latest of its files. */
function sourceStamp(p: string): { size: number; mtimeMs: number } {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return { size: st.size, mtimeMs: st.mtimeMs };
  let size = 0;
  let mtimeMs = st.mtimeMs;
  for (const f of fs.readdirSync(p)) {
    const s = fs.statSync(path.join(p, f));
    size += s.size;
    mtimeMs = Math.max(mtimeMs, s.mtimeMs);
  }
  return { size, mtimeMs };
}
