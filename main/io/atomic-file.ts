import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { asCheckpointError, fail } from '../errors.ts';
import { endWriteBehind, startWriteBehind } from './write-all.ts';

/**
 * Temporary files being written now, removed on SIGINT/SIGTERM by `removeLiveTempFiles`. Each
 * thread has its own set: a worker reports its files to the pool (`reportTempFilesTo`), which
 * enters them in the main thread's set (`trackTempFile`), so an immediate exit removes them too.
 */
const live = new Set<string>();
let report: ((file: string, alive: boolean) => void) | null = null;
export const TEMP_MARK = '.ckpt-tmp-';

function setLive(file: string, alive: boolean): void {
  trackTempFile(file, alive);
  report?.(file, alive);
}

/** In a worker thread: tells `to` of each temporary file created and of each one gone. */
export function reportTempFilesTo(to: (file: string, alive: boolean) => void): void {
  report = to;
}

/** In the main thread: a worker's temporary file, as it reported it. */
export function trackTempFile(file: string, alive: boolean): void {
  if (alive) live.add(file);
  else live.delete(file);
}

/** This thread's temporary files being written now (those its workers reported included). */
export function liveTempFiles(): string[] {
  return [...live];
}

/**
 * Writes a file atomically and publishes it only once checked: `write` fills a temporary file in
 * the destination folder, whose pages are flushed behind it (`startWriteBehind`); the final fsync
 * runs in the I/O thread pool while `check` re-reads it; then a
 * rename (or, without `overwrite`, a hard link that fails if the destination appeared meanwhile)
 * publishes it. A failure, a cancellation or a kill never leaves a partial destination, and an
 * unpublished temporary file is removed.
 */
export async function writeCheckedAtomically<W, T>(
  dest: string, overwrite: boolean, write: (fd: number, tmp: string) => W, check: (tmp: string, written: W) => Promise<{ value: T; publish: boolean }>,
  opts: {
    /** false when the caller fsyncs the folder itself once for many files (a batch) */
    syncFolder?: boolean;
    /** called when `write` has returned and the file waits on the disk: fsync and `check` */
    onWritten?(): void;
  } = {},
): Promise<{ value: T; published: boolean }> {
  const dir = path.dirname(path.resolve(dest));
  if (!overwrite && fs.existsSync(dest)) fail('exists', `${dest} already exists; pass --force to overwrite it`, dest);
  let tmp: string;
  let fd: number;
  try {
    makeFolder(dir);
    tmp = path.join(dir, `.${path.basename(dest)}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
    fd = fs.openSync(tmp, 'wx', 0o644);
  } catch (e) {
    throw asCheckpointError(e, dest);
  }
  setLive(tmp, true);
  startWriteBehind(fd);
  try {
    let written: W;
    try {
      written = write(fd, tmp);
    } catch (e) {
      await endWriteBehind(fd).catch(() => undefined); // the write's own error is the one to report
      throw e;
    }
    await endWriteBehind(fd); // no early flush may outlive the descriptor; a failed one fails the file
    opts.onWritten?.();
    const synced = new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
    const [checked] = await Promise.all([check(tmp, written), synced]);
    fs.closeSync(fd);
    fd = -1;
    if (!checked.publish) {
      fs.unlinkSync(tmp);
      setLive(tmp, false);
      return { value: checked.value, published: false };
    }
    publish(tmp, dest, overwrite);
    setLive(tmp, false);
    if (opts.syncFolder ?? true) syncDir(dir);
    return { value: checked.value, published: true };
  } catch (e) {
    if (fd >= 0) try { fs.closeSync(fd); } catch { /* already failing */ }
    try { fs.unlinkSync(tmp); } catch { /* never created or already gone */ }
    setLive(tmp, false);
    throw asCheckpointError(e, dest);
  }
}

function publish(tmp: string, dest: string, overwrite: boolean): void {
  if (overwrite) return fs.renameSync(tmp, dest);
  try {
    fs.linkSync(tmp, dest); // atomic, and never replaces a file that appeared meanwhile
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') fail('exists', `${dest} appeared while writing; pass --force to overwrite it`, dest);
    throw e;
  }
  fs.unlinkSync(tmp);
}

/**
 * mkdir -p that reports the real reason: Node's recursive mkdir says ENOENT where the file
 * system is read-only, so each missing level is made on its own.
 */
function makeFolder(dir: string): void {
  if (fs.existsSync(dir)) return;
  makeFolder(path.dirname(dir));
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

export function syncDir(dir: string): void {
  try {
    const d = fs.openSync(dir, 'r');
    try { fs.fsyncSync(d); } finally { fs.closeSync(d); }
  } catch { /* some file systems cannot fsync a folder; the rename is still atomic */ }
}

/** Removes this process's temporary files (call from signal handlers). */
export function removeLiveTempFiles(): void {
  for (const t of live) try { fs.unlinkSync(t); } catch { /* gone */ }
  live.clear();
}

/** Temporary files left in a folder by a killed run of a process that no longer exists. */
export function staleTempFiles(dir: string): string[] {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  return names.filter((n) => {
    const m = new RegExp(`${TEMP_MARK.replace(/\./g, '\\.')}(\\d+)-`).exec(n);
    if (!m) return false;
    try { process.kill(Number(m[1]), 0); return false; } catch { return true; }
  }).map((n) => path.join(dir, n));
}
