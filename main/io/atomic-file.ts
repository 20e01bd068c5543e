import * as fs from 'node:fs';
import * as path from 'node:path';
import { asCheckpointError, CheckpointError, fail } from '../errors.ts';
import { endWriteBehind, startWriteBehind } from './write-all.ts';
import { freeInBackground, keepAlive, tempPathFor } from './temp-files.ts';
import { replaceFile } from './replace-file.ts';
import { pauseForTest } from './test-pause.ts';

/**
 * Temporary files being written now, removed on SIGINT/SIGTERM by `removeLiveTempFiles`. Each
 * thread has its own set: a worker reports its files to the pool (`reportTempFilesTo`), which
 * enters them in the main thread's set (`trackTempFile`), so an immediate exit removes them too.
 */
const live = new Set<string>();
let report: ((file: string, alive: boolean) => void) | null = null;
export { TEMP_MARK } from '../io/temp-files.ts';

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

/** Bytes of this thread's temporary files that are written and wait on their fsync and check. */
let bytesWaiting = 0;

/**
 * How many bytes of written, not yet published files this thread holds: a worker takes more jobs
 * while these wait on the disk only up to a bound (jobs/worker.ts), so a batch of big files does
 * not park several of them unpublished on the disk at once.
 */
export function bytesWaitingOnDisk(): number {
  return bytesWaiting;
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
 * publishes it. A big output it replaces is freed in the background once the new one is in place
 * (replace-file.ts). A failure, a cancellation or a kill never leaves a partial destination, and
 * an unpublished temporary file is removed.
 */
export async function writeCheckedAtomically<W, T>(
  dest: string,
  overwrite: boolean,
  write: (fd: number, tmp: string) => W,
  check: (tmp: string, written: W) => Promise<{ value: T; publish: boolean }>,
  opts: {
    /** false when the caller fsyncs the folder itself once for many files (a batch) */
    syncFolder?: boolean;
    /** called when `write` has returned and the file waits on the disk: fsync and `check` */
    onWritten?(): void;
  } = {},
): Promise<{ value: T; published: boolean }> {
  const dir = path.dirname(path.resolve(dest));
  if (!overwrite && fs.existsSync(dest)) fail('exists', `${dest} already exists; pass --force to overwrite it`, dest);
  if (!overwrite) refuseDanglingLink(dest);
  let tmp: string;
  let fd: number;
  try {
    makeFolder(dir);
    tmp = tempPathFor(dest);
    fd = fs.openSync(tmp, 'wx', 0o644);
  } catch (e) {
    throw asCheckpointError(e, dest);
  }
  setLive(tmp, true);
  startWriteBehind(fd);
  let stopKeepAlive = (): void => undefined;
  let waiting = 0;
  try {
    let written: W;
    try {
      written = write(fd, tmp);
    } catch (e) {
      await endWriteBehind(fd).catch(() => undefined); // the write's own error is the one to report
      throw e;
    }
    await endWriteBehind(fd); // no early flush may outlive the descriptor; a failed one fails the file
    waiting = fs.fstatSync(fd).size;
    bytesWaiting += waiting;
    opts.onWritten?.();
    stopKeepAlive = keepAlive(fd); // a long read-back must not look stale to another run
    const synced = new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
    const [checked] = await Promise.all([check(tmp, written), synced]);
    stopKeepAlive();
    fs.closeSync(fd);
    fd = -1;
    if (!checked.publish) {
      fs.unlinkSync(tmp);
      setLive(tmp, false);
      return { value: checked.value, published: false };
    }
    const replaced = publish(tmp, dest, overwrite);
    setLive(tmp, false);
    if (opts.syncFolder ?? true) syncDir(dir);
    if (replaced) {
      pauseForTest('replace:new-in-place');
      freeInBackground([replaced]); // the old output's blocks, freed without this run waiting
    }
    return { value: checked.value, published: true };
  } catch (e) {
    stopKeepAlive();
    if (fd >= 0)
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created or already gone */
    }
    setLive(tmp, false);
    throw namingTheDestination(asCheckpointError(e, dest), tmp, dest);
  } finally {
    bytesWaiting -= waiting;
  }
}

/** The hidden temporary file is an implementation detail: an error about it is about the destination. */
function namingTheDestination(err: CheckpointError, tmp: string, dest: string): CheckpointError {
  if (!err.message.includes(tmp) && err.file !== tmp) return err;
  return new CheckpointError(err.kind, err.message.split(tmp).join(dest), dest);
}

/**
 * A destination that is a symbolic link to nothing: `existsSync` says it is not there, but the
 * link is, and publishing would fail as if a file had appeared while writing.
 */
export function refuseDanglingLink(dest: string): void {
  let target: string;
  try {
    // nothing there is the usual case (every new output): asked without an exception to build
    if (!fs.lstatSync(dest, { throwIfNoEntry: false })?.isSymbolicLink()) return;
    target = fs.readlinkSync(dest);
  } catch {
    return; // gone meanwhile, or not readable
  }
  fail('exists', `${dest} is a symbolic link to ${target}, which does not exist; remove the link, or pass --force to replace the link with the output`, dest);
}

/** Returns the second link to the output it replaced, for the caller to free, if it made one. */
function publish(tmp: string, dest: string, overwrite: boolean): string | null {
  if (overwrite) return replaceFile(tmp, dest);
  try {
    fs.linkSync(tmp, dest); // atomic, and never replaces a file that appeared meanwhile
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') fail('exists', `${dest} appeared while writing; pass --force to overwrite it`, dest);
    throw e;
  }
  fs.unlinkSync(tmp);
  return null;
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
    try {
      fs.fsyncSync(d);
    } finally {
      fs.closeSync(d);
    }
  } catch {
    /* some file systems cannot fsync a folder; the rename is still atomic */
  }
}

/** Removes this process's temporary files (call from signal handlers). */
export function removeLiveTempFiles(): void {
  for (const t of live)
    try {
      fs.unlinkSync(t);
    } catch {
      /* gone */
    }
  live.clear();
}
