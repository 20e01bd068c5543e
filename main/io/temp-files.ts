import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';

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
/**
 * `.<name>.ckpt-replaced-<host>-<pid>-<start>-<random>`: a second link to an output that `--force`
 * replaced (replace-file.ts), made so that the rename over the output does not wait for the kernel
 * to free the old file, which is then removed in the background. It is never anyone's live work:
 * before the rename the output still has its own link, after it the old content is unwanted. So it
 * is stale from the start, and the next run into its folder or `ckpt clean` removes it.
 */
export const REPLACED_MARK = '.ckpt-replaced-';
/** `.<name>.ckpt-publish-<host>-<pid>-<start>-<random>.json`: the journal of a staging folder's publish (publish-journal.ts) */
export const PUBLISH_MARK = '.ckpt-publish-';
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
/** `.<name>.ckpt-tmp-<host>-<pid>-<start ms, base 36>-<8 hex>` (or `.ckpt-replaced-`) */
const NAME = /\.ckpt-(tmp|replaced)-([A-Za-z0-9_.]+)-(\d+)-([0-9a-z]+)-([0-9a-f]{8})$/;
/** what versions before host and start time wrote: `.<name>.ckpt-tmp-<pid>-<hex>` */
const OLD_NAME = /\.ckpt-tmp-(\d+)-([0-9a-f]+)$/;

/** A fresh temporary path beside `dest` (same folder, so publishing it is a rename). */
export function tempPathFor(dest: string): string {
  return markedPathFor(dest, TEMP_MARK);
}

/** A fresh name beside `dest` for the second link to the output that is being replaced. */
export function replacedPathFor(dest: string): string {
  return markedPathFor(dest, REPLACED_MARK);
}

function markedPathFor(dest: string, mark: string): string {
  const abs = path.resolve(dest);
  return path.join(path.dirname(abs), `.${path.basename(abs)}${mark}${THIS_HOST}-${process.pid}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`);
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
  /** a replaced output's second link (REPLACED_MARK), not a file being written */
  replaced: boolean;
}

/** The name's parts, or null when it is not one of our temporary names. */
export function parseTempName(name: string): { output: string; host: string | null; pid: number | null; startedMs: number | null; replaced: boolean } | null {
  if (!name.startsWith('.')) return null;
  const m = NAME.exec(name);
  const old = m ? null : OLD_NAME.exec(name);
  if (!m && !old) return null;
  const replaced = m?.[1] === 'replaced';
  const at = name.indexOf(replaced ? REPLACED_MARK : TEMP_MARK);
  if (at < 1) return null;
  const output = name.slice(1, at);
  if (m) return { output, host: m[2]!, pid: Number(m[3]), startedMs: parseInt(m[4]!, 36), replaced };
  return { output, host: null, pid: Number(old![1]), startedMs: null, replaced };
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
  // A staging folder that a publish journal names may hold originals parked by a killed publish:
  // only the journal's recovery (the next re-shard into this folder) may remove it, never age.
  if (st.isDirectory() && fs.existsSync(path.join(dir, `${name.replace(TEMP_MARK, PUBLISH_MARK)}.json`))) return null;
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

/**
 * Untouched for `staleAfterMs`: its writer is gone, wherever it ran. (The start time in the name is
 * for people.) A replaced output's second link is stale from the start (REPLACED_MARK).
 */
export function isStale(e: TempEntry, staleAfterMs = STALE_AFTER_MS, now = Date.now()): boolean {
  return (e.replaced && !e.folder) || now - e.modifiedMs >= staleAfterMs; // we never make a replaced folder: age decides
}

/**
 * Removes one leftover; false when it cannot be removed, or when a temporary file was gone
 * already. A replaced output that is gone counts as removed: its own background removal won.
 */
export function removeTempEntry(e: TempEntry): boolean {
  try {
    fs.rmSync(e.path, { recursive: e.folder, force: false });
    return true;
  } catch (err) {
    return e.replaced && (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Removes the stale temporary files directly in `dir` (a run does this in each folder it writes).
 * Replaced outputs left there are handed to `freeInBackground`: freeing a big file's blocks is what
 * their removal costs, and no run should wait for it.
 */
export function removeStaleTempFiles(dir: string, staleAfterMs = STALE_AFTER_MS): TempEntry[] {
  const stale = tempFilesIn(dir).filter((e) => isStale(e, staleAfterMs));
  return [...freeReplaced(stale), ...stale.filter((e) => !e.replaced && removeTempEntry(e))];
}

/** Frees the replaced outputs left directly in `dir` in the background, and only those. */
export function freeReplacedOutputsIn(dir: string): TempEntry[] {
  return freeReplaced(tempFilesIn(dir));
}

function freeReplaced(entries: TempEntry[]): TempEntry[] {
  const replaced = entries.filter((e) => e.replaced && !e.folder);
  if (replaced.length) freeInBackground(replaced.map((e) => e.path));
  return replaced;
}

/**
 * Unlinks `files` in a detached `rm` that outlives this process, so that nobody waits while the
 * kernel frees their blocks (for a 2 GiB file on ext4 mounted with `discard`, 0.3–0.45 s of I/O
 * wait, most of it in the unlink). Where `rm` cannot start, they are unlinked in the I/O thread
 * pool. One that is still there when this process or the `rm` is killed is removed by the next
 * run into its folder or by `ckpt clean` (REPLACED_MARK).
 */
export function freeInBackground(files: string[]): void {
  const unlinkHere = (): void => {
    for (const f of files) fs.unlink(f, () => undefined);
  };
  try {
    const rm = spawn('rm', ['-f', '--', ...files], { detached: true, stdio: 'ignore' });
    rm.on('error', unlinkHere);
    if (rm.pid === undefined) return; // did not start: 'error' follows and unlinks them here
    rm.unref();
  } catch {
    unlinkHere();
  }
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
