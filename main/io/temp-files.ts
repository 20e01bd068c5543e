import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * The hidden temporary files (and staging folders) written beside an output before it is
 * published: `.<name>.ckpt-tmp-<host>-<pid>-<start>-<random>`, so that whoever finds one can tell
 * which machine and process made it and when, and two writers never pick the same name.
 *
 * Who removes one: the process that made it (on failure, cancellation or Ctrl-C), or anyone once
 * it is stale: untouched for STALE_AFTER_MS. A live writer touches its file at least every
 * HEARTBEAT_MS (every write does; `keepAlive` while it only reads the file back). A PID is never
 * used to decide: on a shared file system the file may come from another node, and in a container
 * from another PID namespace, where "no such process here" says nothing.
 */
export const TEMP_MARK = '.ckpt-tmp-';
export const STALE_AFTER_MS = 60 * 60_000;
export const HEARTBEAT_MS = 5 * 60_000;

/** This machine's name as temporary names carry it. */
export const THIS_HOST =
  os
    .hostname()
    .replace(/[^A-Za-z0-9_.]/g, '_')
    .slice(0, 40) || 'host';

/**
 * The PID namespace this process runs in (`/proc/self/ns/pid`'s inode), or null where there is
 * none to read. Two processes can ask each other "are you alive?" by PID only when host name and
 * namespace both agree: a container or `unshare --pid` on the same host numbers PIDs afresh.
 */
export function pidNamespace(): string | null {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}
/** `.<name>.ckpt-tmp-<host>-<pid>-<start ms, base 36>-<8 hex>` */
const NAME = /\.ckpt-tmp-([A-Za-z0-9_.]+)-(\d+)-([0-9a-z]+)-([0-9a-f]{8})$/;
/** what versions before host and start time wrote: `.<name>.ckpt-tmp-<pid>-<hex>` */
const OLD_NAME = /\.ckpt-tmp-(\d+)-([0-9a-f]+)$/;

/** A fresh temporary path beside `dest` (same folder, so publishing it is a rename). */
export function tempPathFor(dest: string): string {
  const abs = path.resolve(dest);
  return path.join(
    path.dirname(abs),
    `.${path.basename(abs)}${TEMP_MARK}${THIS_HOST}-${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`,
  );
}

export interface TempEntry {
  path: string;
  /** the output it was going to become (its name without the hidden prefix and the mark) */
  output: string;
  host: string | null;
  pid: number | null;
  /** when its writer created it; null for the older names */
  startedMs: number | null;
  /** latest modification of the file, or of anything inside a staging folder */
  modifiedMs: number;
  bytes: number;
  folder: boolean;
}

/** The name's parts, or null when it is not one of our temporary names. */
export function parseTempName(name: string): { output: string; host: string | null; pid: number | null; startedMs: number | null } | null {
  const at = name.indexOf(TEMP_MARK);
  if (!name.startsWith('.') || at < 1) return null;
  const output = name.slice(1, at);
  const m = NAME.exec(name);
  if (m) return { output, host: m[1]!, pid: Number(m[2]), startedMs: parseInt(m[3]!, 36) };
  const old = OLD_NAME.exec(name);
  if (old) return { output, host: null, pid: Number(old[1]), startedMs: null };
  return null;
}

function entryFor(dir: string, name: string): TempEntry | null {
  const parsed = parseTempName(name);
  if (!parsed) return null;
  const p = path.join(dir, name);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return null; // published or removed meanwhile
  }
  if (st.isSymbolicLink()) return null;
  let modifiedMs = st.mtimeMs;
  let bytes = st.size;
  if (st.isDirectory()) {
    bytes = 0;
    for (const f of safeList(p)) {
      try {
        const s = fs.lstatSync(path.join(p, f));
        modifiedMs = Math.max(modifiedMs, s.mtimeMs);
        bytes += s.size;
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return { path: p, ...parsed, modifiedMs, bytes, folder: st.isDirectory() };
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Our temporary files and staging folders directly in `dir`. */
export function tempFilesIn(dir: string): TempEntry[] {
  return safeList(dir)
    .map((n) => entryFor(dir, n))
    .filter((e): e is TempEntry => e !== null);
}

/** Our temporary files and staging folders anywhere under `root` (symlinks are not followed). */
export function findTempFiles(root: string): TempEntry[] {
  const found: TempEntry[] = [];
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const t = entryFor(dir, e.name);
      if (t) found.push(t);
      else if (e.isDirectory()) walk(path.join(dir, e.name));
    }
  };
  walk(root);
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** Untouched for `staleAfterMs`: its writer is gone, wherever it ran. (The start time in the name is for people.) */
export function isStale(e: TempEntry, staleAfterMs = STALE_AFTER_MS, now = Date.now()): boolean {
  return now - e.modifiedMs >= staleAfterMs;
}

/** Removes one leftover; false when it was gone already or cannot be removed. */
export function removeTempEntry(e: TempEntry): boolean {
  try {
    fs.rmSync(e.path, { recursive: e.folder, force: false });
    return true;
  } catch {
    return false;
  }
}

/** Removes the stale temporary files directly in `dir` (a run does this in each folder it writes). */
export function removeStaleTempFiles(dir: string, staleAfterMs = STALE_AFTER_MS): TempEntry[] {
  return tempFilesIn(dir).filter((e) => isStale(e, staleAfterMs) && removeTempEntry(e));
}

/**
 * Touches a temporary file (by descriptor) or staging folder (by path) every HEARTBEAT_MS while
 * its writer only reads it (fsync, read-back, verification), so no other run takes it for stale.
 * Returns the function that stops it.
 */
export function keepAlive(target: number | string): () => void {
  const timer = setInterval(() => {
    const now = new Date();
    // a folder already published or discarded has nothing left to keep alive
    if (typeof target === 'number') fs.futimes(target, now, now, () => undefined);
    else fs.utimes(target, now, now, () => undefined);
  }, HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** `1h`, `30m`, `90s`, `0`: a duration for `--older-than`, in ms; null when it does not parse. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
