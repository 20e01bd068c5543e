import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { asCheckpointError } from '../errors.ts';
import { tailSha256 } from '../io/tail-hash.ts';

/**
 * What a batch has published, recorded as it is published: each run (each task of a job array,
 * each re-run) appends to its own journal, `<out>/.ckpt-batch/<shard>.<host>.<pid>.<start>.<random>.jsonl`,
 * one JSON line per finished file. No two processes ever write the same file, so concurrent
 * shards on many nodes lose nothing, and a killed run has recorded every output it published
 * (each line is written at once; a kill -9 loses no written line, a crash of the machine at most
 * the last second, whose outputs a re-run verifies again instead of trusting a record).
 *
 * A record names each output with its size and its tail fingerprint (the zip central directory,
 * which lists every record's CRC-32), so a re-run checks that the output on disk is still the one
 * recorded by reading a few bytes at its end, whoever wrote it.
 */
export const JOURNAL_DIR = '.ckpt-batch';

export interface RecordedOutput {
  file: string;
  bytes: number;
  tail: { bytes: number; sha256: string };
}

export type JournalLine =
  | {
      type: 'start';
      version: 1;
      input: string;
      rules: string;
      shard: { index: number; count: number } | null;
      host: string;
      pid: number;
      at: number;
      planned: number;
      skipped: number;
    }
  | {
      type: 'done';
      source: string;
      group: string;
      sourceBytes: number;
      sourceMtimeMs: number;
      rules: string;
      outputs: RecordedOutput[];
      adopted?: true;
      at: number;
    }
  | { type: 'failed'; source: string; group: string; reason: string; at: number }
  | { type: 'finished'; done: number; skipped: number; failed: number; cancelled: number; at: number };

export type DoneRecord = Extract<JournalLine, { type: 'done' }>;

/** How long appended lines may wait for an fdatasync (they are in the page cache at once). */
const SYNC_EVERY_MS = 1000;

/** This run's journal. Writing errors never stop the batch: the first is kept in `error`. */
export class BatchJournal {
  private fd = -1;
  private lastSync = 0;
  /** the first failure to record, as one line naming the journal: the batch goes on without it */
  error: string | null = null;
  readonly file: string;

  constructor(outDir: string, shard: { index: number; count: number } | undefined) {
    const host =
      os
        .hostname()
        .replace(/[^A-Za-z0-9_-]/g, '_')
        .slice(0, 40) || 'host';
    const name = `${shard ? `shard-${shard.index}-of-${shard.count}` : 'all'}.${host}.${process.pid}.${Date.now().toString(36)}.${randomBytes(3).toString('hex')}.jsonl`;
    this.file = path.join(outDir, JOURNAL_DIR, name);
  }

  append(line: JournalLine): void {
    if (this.error) return;
    try {
      if (this.fd < 0) {
        fs.mkdirSync(path.dirname(this.file), { recursive: true });
        this.fd = fs.openSync(this.file, 'a', 0o644);
      }
      const text = Buffer.from(JSON.stringify(line) + '\n');
      // one write per line: O_APPEND puts it whole at the end; a short write (disk full) is an error
      const n = fs.writeSync(this.fd, text);
      if (n !== text.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
      const now = performance.now();
      if (now - this.lastSync >= SYNC_EVERY_MS) {
        this.lastSync = now;
        fs.fdatasyncSync(this.fd);
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        code === 'EEXIST' || code === 'ENOTDIR'
          ? `${path.dirname(this.file)} is a file, not a folder`
          : asCheckpointError(e, this.file).message.replace(`${this.file}: `, '');
      this.error = `could not record progress in ${this.file} (${why}); a re-run verifies this run's outputs again instead of trusting a record`;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (e) {
      this.error ??= `could not record progress in ${this.file} (${asCheckpointError(e, this.file).message})`;
    }
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

export interface JournalRun {
  file: string;
  start: Extract<JournalLine, { type: 'start' }> | null;
  finished: Extract<JournalLine, { type: 'finished' }> | null;
  done: DoneRecord[];
  failed: Extract<JournalLine, { type: 'failed' }>[];
}

/** Every run's journal under `outDir`, oldest first. Lines that do not parse (a cut-off last line) are skipped. */
export function readJournals(outDir: string): JournalRun[] {
  const dir = path.join(outDir, JOURNAL_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
  } catch {
    return [];
  }
  const runs: JournalRun[] = [];
  for (const n of names) {
    const run: JournalRun = { file: path.join(dir, n), start: null, finished: null, done: [], failed: [] };
    let text: string;
    try {
      text = fs.readFileSync(run.file, 'utf8');
    } catch {
      continue;
    }
    for (const l of text.split('\n')) {
      if (!l) continue;
      let line: JournalLine;
      try {
        line = JSON.parse(l) as JournalLine;
      } catch {
        continue;
      }
      if (line.type === 'start') run.start = line;
      else if (line.type === 'finished') run.finished = line;
      else if (line.type === 'done') run.done.push(line);
      else if (line.type === 'failed') run.failed.push(line);
    }
    runs.push(run);
  }
  return runs.sort((a, b) => (a.start?.at ?? 0) - (b.start?.at ?? 0));
}

/** The latest record of each source that was converted with `rules`, by source. */
export function doneRecords(runs: JournalRun[], rules: string): Map<string, DoneRecord> {
  const latest = new Map<string, DoneRecord>();
  for (const r of runs)
    for (const d of r.done) {
      if (d.rules !== rules) continue;
      const had = latest.get(d.source);
      if (!had || had.at <= d.at) latest.set(d.source, d);
    }
  return latest;
}

/** The output on disk is the one recorded: same size, same tail. */
export function matchesRecord(outDir: string, o: RecordedOutput): boolean {
  let size: number;
  try {
    size = fs.statSync(path.join(outDir, o.file)).size;
  } catch {
    return false;
  }
  return size === o.bytes && tailSha256(path.join(outDir, o.file), o.tail.bytes) === o.tail.sha256;
}
