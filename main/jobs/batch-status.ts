import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJournals, type JournalLine, type JournalRun } from './batch-journal.ts';
import { inShard } from './batch.ts';

/**
 * Where a batch stands, from the journals its runs left in the output folder: every task of a
 * job array, on whatever node, appends to its own, so this sees all of them (batch-journal.ts).
 */
export interface ShardStatus {
  /** `3/8`, or `all` for a batch run without --shard */
  shard: string;
  /** checkpoints the latest run of this shard found (null: no run of it recorded yet) */
  planned: number | null;
  done: number;
  failed: { source: string; reason: string }[];
  runs: number;
  latest: { host: string; pid: number; startedAt: number; finishedAt: number | null; lastRecordAt: number } | null;
}

export interface BatchStatus {
  outDir: string;
  shards: ShardStatus[];
  done: number;
  failed: number;
  /** sum of the shards' planned counts; null while some shard has no run recorded */
  planned: number | null;
  /** every shard's latest run finished, everything planned is done, nothing failed */
  complete: boolean;
}

type Start = Extract<JournalLine, { type: 'start' }>;
type ShardSpec = Start['shard'];
const label = (s: ShardSpec): string => (s ? `${s.index}/${s.count}` : 'all');

export function batchStatus(outDir: string): BatchStatus {
  const out = path.resolve(outDir);
  const runs = readJournals(out).filter((r) => r.start);
  if (!runs.length) return { outDir: out, shards: [], done: 0, failed: 0, planned: null, complete: false };
  // the latest run decides the rules and how the batch is split; older runs still count for what they published
  const newest = runs[runs.length - 1]!.start!;
  const count = newest.shard?.count ?? 1;
  const rules = newest.rules;
  // the latest outcome of each source under these rules, whichever run recorded it
  const outcome = new Map<string, { group: string; at: number; failed: string | null; outputs: string[] }>();
  for (const r of runs) {
    if (r.start!.rules !== rules) continue;
    for (const d of r.done) note(outcome, d.source, { group: d.group, at: d.at, failed: null, outputs: d.outputs.map((o) => o.file) });
    for (const f of r.failed) note(outcome, f.source, { group: f.group, at: f.at, failed: f.reason, outputs: [] });
  }
  const specs: ShardSpec[] = newest.shard ? Array.from({ length: count }, (_, i) => ({ index: i + 1, count })) : [null];
  const shards = specs.map((spec): ShardStatus => {
    const mine = runs.filter((r) => r.start!.rules === rules && label(r.start!.shard) === label(spec));
    const last = mine[mine.length - 1];
    const s: ShardStatus = {
      shard: label(spec),
      planned: last ? last.start!.planned : null,
      done: 0,
      failed: [],
      runs: mine.length,
      latest: last ? latestOf(last) : null,
    };
    for (const [source, o] of outcome) {
      if (!inShard(o.group, spec ?? undefined)) continue;
      if (o.failed !== null) s.failed.push({ source, reason: o.failed });
      else if (o.outputs.every((f) => fs.existsSync(path.join(out, f)))) s.done++;
    }
    return s;
  });
  const done = shards.reduce((a, s) => a + s.done, 0);
  const failed = shards.reduce((a, s) => a + s.failed.length, 0);
  const planned = shards.every((s) => s.planned !== null) ? shards.reduce((a, s) => a + s.planned!, 0) : null;
  const complete = planned !== null && done === planned && failed === 0 && shards.every((s) => s.latest?.finishedAt);
  return { outDir: out, shards, done, failed, planned, complete };
}

function note(
  m: Map<string, { group: string; at: number; failed: string | null; outputs: string[] }>,
  source: string,
  v: { group: string; at: number; failed: string | null; outputs: string[] },
): void {
  const had = m.get(source);
  if (!had || had.at <= v.at) m.set(source, v);
}

function latestOf(r: JournalRun): NonNullable<ShardStatus['latest']> {
  const s = r.start!;
  let lastRecordAt = Math.max(s.at, r.finished?.at ?? 0);
  for (const x of [...r.done, ...r.failed]) lastRecordAt = Math.max(lastRecordAt, x.at);
  return { host: s.host, pid: s.pid, startedAt: s.at, finishedAt: r.finished?.at ?? null, lastRecordAt };
}
