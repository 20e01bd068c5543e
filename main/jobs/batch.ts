import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BatchPlanItem, BatchSummary } from '../../shared/api.ts';
import type { PackedConversionReport } from '../convert/packed-report.ts';
import type { ErrorInfo } from '../../shared/errors.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { asCheckpointError, fail } from '../errors.ts';
import type { WorkerPool } from './pool.ts';
import type { ConvertJobRequest, ConvertJobResults } from './convert-job.ts';
import { syncDir } from '../io/atomic-file.ts';
import { findCheckpoints, groupFamilies, type FileGroup } from '../inputs/discover.ts';
import { BatchJournal, doneRecords, matchesRecord, readJournals, type RecordedOutput } from './batch-journal.ts';
import { findTempFiles, isStale, removeStaleTempFiles, removeTempEntry } from '../io/temp-files.ts';
import { outputFiles } from '../convert/plan.ts';
import { pauseUntilFileRemoved } from '../io/test-pause.ts';
import { isDcpFolder } from '../formats/dcp/dcp.ts';
import { isDeepSpeedFolder } from '../formats/deepspeed/locate.ts';

/**
 * Converting a folder: every checkpoint under it (found by content), written to the same
 * relative place under the output folder, in a pool of worker threads. A failing file does not
 * stop the batch. Each published output is recorded in this run's journal (batch-journal.ts); a
 * re-run, or another task of a job array, skips every output that a journal records and that is
 * still on disk as recorded, and keeps an unrecorded existing output when it verifies against its
 * source, so a killed or re-submitted batch finishes with every file converted exactly once.
 */
export interface BatchOptions {
  input: string;
  outDir: string;
  rules: ConversionRules;
  force: boolean;
  /** `--clean-stale`: before starting, remove stale temporary files anywhere under the output folder */
  cleanStale?: boolean;
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
  const { files, ignored, unreadable } = findCheckpoints(input, out);
  pauseUntilFileRemoved('CKPT_TEST_PAUSE_AFTER_DISCOVERY');
  const groups = groupFamilies(files).filter((g) => inShard(g.files[0]!, opts.shard));
  const recorded = doneRecords(readJournals(out), JSON.stringify(opts.rules));
  const items: BatchItem[] = [];
  const units: Unit[] = [];
  for (const g of groups) {
    for (const unit of unitsOf(g, opts.rules, input)) {
      units.push(unit);
      const outputs = outputFiles(unit.source, unit.output, unit.rules).map((o) => o.file);
      const item: BatchItem = { id: items.length, sources: unit.sources, family: g.family, outputs, bytes: 0, status: 'pending' };
      items.push(item);
      try {
        unit.stamp = sourceStamp(path.join(input, unit.source));
      } catch (e) {
        // it vanished (or became unreadable) after the folder was read: this file fails, not the batch
        item.status = 'failed';
        item.reason = asCheckpointError(e, path.join(input, unit.source)).message;
        continue;
      }
      item.bytes = unit.stamp.size;
      const r = recorded.get(unit.source);
      if (r && r.sourceBytes === unit.stamp.size && r.sourceMtimeMs === unit.stamp.mtimeMs && r.outputs.every((o) => matchesRecord(out, o))) {
        item.status = 'skipped';
        item.outputs = r.outputs.map((o) => o.file);
        item.reason = 'already converted and verified (recorded in the batch journal)';
        item.verified = true;
      }
    }
  }
  for (const u of unreadable.filter((x) => inShard(x.file, opts.shard))) {
    units.push({ source: u.file, sources: [u.file], output: u.file, rules: opts.rules, group: u.file, stamp: null });
    items.push({ id: items.length, sources: [u.file], family: false, outputs: [], bytes: 0, status: 'failed', reason: u.reason });
  }
  return { items, ignored, units };
}

interface Unit {
  source: string;
  sources: string[];
  output: string;
  rules: ConversionRules;
  /** the family's first file: what `--shard` hashes */
  group: string;
  /** size and modification time when planned; null when it could not be read */
  stamp?: { size: number; mtimeMs: number } | null;
}

/**
 * How a group becomes conversion units. A per-rank family under `ddp` keeps one file per rank,
 * rank r on cuda:r; under cpu/gpu/dp the ranks of a DDP run are copies, so rank 0 is converted to
 * the family's name without the rank (the identity of the copies is checked by `ckpt reshard`).
 */
function unitsOf(g: FileGroup, rules: ConversionRules, input: string): Unit[] {
  if (!g.family) {
    const f = g.files[0]!;
    // a DCP folder becomes one file beside where the folder was: step100/ → step100.pt
    return [
      { source: f, sources: g.files, output: isDcpFolder(path.join(input, f)) || isDeepSpeedFolder(path.join(input, f)) ? `${f}.pt` : f, rules, group: f },
    ];
  }
  const group = g.files[0]!;
  if (rules.preset?.name === 'ddp') {
    return g.files.map((f, r) => ({
      source: f,
      sources: [f],
      output: f,
      rules: { ...rules, preset: { name: 'ddp', worldSize: 1 }, mapLocation: [{ from: '*', to: `cuda:${r}` }, ...rules.mapLocation] },
      group,
    }));
  }
  return [{ source: group, sources: g.files, output: g.mergedName!, rules, group }];
}

export async function runBatch(opts: BatchOptions, pool: WorkerPool<ConvertJobRequest, ConvertJobResults>): Promise<BatchSummary> {
  const t0 = performance.now();
  const input = path.resolve(opts.input);
  const out = path.resolve(opts.outDir);
  const { items, ignored, units } = planBatch(opts);
  // Temporary files a killed run left: removed once stale (untouched for an hour), never by
  // guessing from a PID, since another node or container may be writing them right now.
  let staleRemoved = 0;
  if (opts.cleanStale) for (const t of findTempFiles(out)) if (isStale(t) && removeTempEntry(t)) staleRemoved++;
  const outputFolders = new Set([out, ...items.flatMap((i) => i.outputs.map((o) => path.dirname(path.join(out, o))))]);
  for (const dir of outputFolders) staleRemoved += removeStaleTempFiles(dir).length;
  const totalBytes = items.filter((i) => i.status === 'pending').reduce((a, i) => a + i.bytes, 0);
  opts.onEvent?.({ type: 'plan', items, ignored, totalBytes });
  for (const i of items) if (i.status === 'failed') opts.onEvent?.({ type: 'item', item: i });
  const rulesKey = JSON.stringify(opts.rules);
  const journal = new BatchJournal(out, opts.shard);
  journal.append({
    type: 'start',
    version: 1,
    input,
    rules: rulesKey,
    shard: opts.shard ?? null,
    host: os.hostname(),
    pid: process.pid,
    at: Date.now(),
    planned: items.length,
    skipped: items.filter((i) => i.status === 'skipped').length,
  });
  for (const i of items)
    if (i.status === 'failed')
      journal.append({ type: 'failed', source: units[i.id]!.source, group: units[i.id]!.group, reason: i.reason ?? '', at: Date.now() });
  let overallDone = 0;
  const convertItem = async (item: BatchItem): Promise<void> => {
    const unit = units[item.id]!;
    const src = path.join(input, unit.source);
    let lastDone = 0;
    const convert = async (source: string, output: string, share: number): Promise<PackedConversionReport> => {
      const base = lastDone;
      return pool.run(
        {
          kind: 'convert',
          source: path.join(input, source),
          output: path.join(out, output),
          rules: unit.rules,
          force: opts.force,
          syncFolder: false,
          keepVerifiedExisting: true,
        },
        {
          ...(opts.signal ? { signal: opts.signal } : {}),
          onProgress: (p) => {
            const scaled = base + (p.total ? (p.done / p.total) * share : 0);
            overallDone += scaled - lastDone;
            lastDone = scaled;
            opts.onEvent?.({ type: 'progress', id: item.id, done: p.done, total: p.total, overallDone, overallTotal: totalBytes });
          },
        },
      );
    };
    try {
      item.status = 'running';
      // said when the item goes to the pool: a small file's worker shows no progress before it is done
      opts.onEvent?.({ type: 'start', id: item.id });
      const reports: PackedConversionReport[] = [];
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
      const written = reports.flatMap((r) => r.outputs);
      if (!item.verified) {
        item.status = 'failed';
        item.reason = `verification failed: ${written.find((o) => !o.verified)?.mismatch}`;
      } else {
        const adopted = written.every((o) => o.adopted);
        item.status = adopted ? 'skipped' : 'done';
        if (adopted) item.reason = 'already converted (no journal recorded it); verified against the source and kept';
        const outputs: RecordedOutput[] = written.map((o, i) => ({ file: item.outputs[i]!, bytes: o.bytes, tail: o.tail! }));
        journal.append({
          type: 'done',
          source: unit.source,
          group: unit.group,
          sourceBytes: unit.stamp!.size,
          sourceMtimeMs: unit.stamp!.mtimeMs,
          rules: rulesKey,
          outputs,
          ...(adopted ? { adopted: true as const } : {}),
          at: Date.now(),
        });
      }
    } catch (e) {
      const err: ErrorInfo = asCheckpointError(e, src).toInfo();
      item.status = err.kind === 'cancelled' ? 'cancelled' : 'failed';
      item.reason = err.message;
    }
    if (item.status === 'failed') journal.append({ type: 'failed', source: unit.source, group: unit.group, reason: item.reason ?? '', at: Date.now() });
    opts.onEvent?.({ type: 'item', item });
  };
  // Items go to the pool a few at a time: as many as its threads may hold (a running job each and,
  // for small files, up to three waiting on their fsync and read-back), few enough that a
  // 10,000-file batch does not queue 10,000 jobs (each with a listener on the cancel signal).
  // Twice the threads, as before, left each thread one job waiting at most: a 2 MiB file's fsync
  // outlasts the next file's copy on a busy disk, and the thread sat idle.
  const pending = items.filter((i) => i.status === 'pending');
  let next = 0;
  const feed = async (): Promise<void> => {
    while (next < pending.length) await convertItem(pending[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(pending.length, pool.capacity) }, feed));
  // Each output was fsynced before its rename; one fsync per folder makes the renames durable.
  for (const dir of new Set(items.filter((i) => i.status === 'done').flatMap((i) => i.outputs.map((o) => path.dirname(path.join(out, o)))))) syncDir(dir);
  const count = (s: ItemStatus): number => items.filter((i) => i.status === s).length;
  const summary: BatchSummary = {
    items,
    done: count('done'),
    skipped: count('skipped'),
    failed: count('failed'),
    cancelled: count('cancelled'),
    bytes: totalBytes,
    seconds: (performance.now() - t0) / 1000,
    ...(staleRemoved ? { staleRemoved } : {}),
  };
  journal.append({ type: 'finished', done: summary.done, skipped: summary.skipped, failed: summary.failed, cancelled: summary.cancelled, at: Date.now() });
  journal.close();
  if (journal.error) summary.warning = journal.error;
  opts.onEvent?.({ type: 'finished', summary });
  return summary;
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
