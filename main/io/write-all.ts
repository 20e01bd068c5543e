import * as fs from 'node:fs';

/**
 * Starts write-back of a file's dirty pages once this many bytes were written since the last start.
 * Without it a 2 GiB output sits in the page cache until the final fsync, which then waits for
 * all of it (0.5 s here) and, on this VM, the writer is slowed by piling up dirty pages; flushing
 * behind the writer overlaps the disk with the copy. 32 MiB measured best among 16–128 MiB.
 */
const WRITE_BEHIND_BYTES = 32 << 20;

interface WriteBehind {
  sinceFlush: number;
  flushes: Promise<void>[];
}

/** Files whose bytes are flushed behind the writer, by descriptor (see `startWriteBehind`). */
const behind = new Map<number, WriteBehind>();

/**
 * Writes all of `buf` at `position`. When `fd` was registered with `startWriteBehind`, every
 * WRITE_BEHIND_BYTES written start an fdatasync in the I/O thread pool; they run while this
 * (synchronous) writer goes on.
 */
export function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
  wroteBytes(fd, buf.length);
}

/**
 * `writeAll` of `bufs` one after another from `position`, in one pwritev where the kernel takes
 * them whole (a zip record's header and its data: one system call, not two). A short write goes
 * on with what is left.
 */
export function writeAllv(fd: number, bufs: Uint8Array[], position: number): void {
  let total = 0;
  for (const b of bufs) total += b.length;
  const done = fs.writevSync(fd, bufs, position);
  // a short write (rare on a regular file): the rest buffer by buffer, from where it stopped
  let start = 0;
  for (const b of bufs) {
    const end = start + b.length;
    for (let at = Math.max(done, start); at < end; ) at += fs.writeSync(fd, b, at - start, end - at, position + at);
    start = end;
  }
  wroteBytes(fd, total);
}

/** Counts bytes written to `fd` for its write-behind, and starts an early flush when enough are. */
function wroteBytes(fd: number, n: number): void {
  const b = behind.get(fd);
  if (!b) return;
  b.sinceFlush += n;
  if (b.sinceFlush < WRITE_BEHIND_BYTES) return;
  b.sinceFlush = 0;
  // An early flush's error must not be dropped: Linux reports a write-back error once per open
  // file, so the final fsync would then succeed (see endWriteBehind).
  b.flushes.push(new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve()))));
}

/** From now on, writes to `fd` through `writeAll` and `writeAllv` are flushed behind the writer. */
export function startWriteBehind(fd: number): void {
  behind.set(fd, { sinceFlush: 0, flushes: [] });
}

/**
 * Stops flushing `fd` behind the writer once no early flush is still running, so that the
 * descriptor can be closed (a queued fdatasync must never meet a reused number). Rejects with
 * the first early flush's error, such as EIO or ENOSPC: the file must then not be published.
 */
export async function endWriteBehind(fd: number): Promise<void> {
  const b = behind.get(fd);
  behind.delete(fd);
  if (!b) return;
  const results = await Promise.allSettled(b.flushes);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
