import * as fs from 'node:fs';
import { crc32 } from './crc32.ts';
import type { Worker } from 'node:worker_threads';
import { STREAM_CHUNK } from './random-access.ts';
import { startWorker } from './start-worker.ts';

/** Below this size a storage is read back in the calling thread; a message costs more than the read. */
const INLINE_BYTES = 4 << 20;
let inlineBuffer: Buffer | null = null;

let shared: ByteVerifier | null = null;
/** Descriptors of files being read back inline, closed by `releaseReadBack`. */
const inlineFds = new Map<string, number>();

/** Ranges up to this size are read back through a 1 MiB window of the file (see `windowCrc`). */
const WINDOW_READ_BYTES = 64 << 10;
const WINDOW = 1 << 20;
let window: { file: string; buf: Buffer; start: number; length: number } | null = null;

/**
 * CRC-32 of a small range, from one read of the 1 MiB that starts there: the storages of a
 * checkpoint follow each other, so the next ones are read back from the same window (a
 * 100,000-tensor file is otherwise 100,000 reads). The window holds what the file held when it
 * was read; data ranges are written once and reported only when they are in the file, so what
 * it holds of them is final.
 */
function windowCrc(file: string, fd: number, offset: number, length: number): number {
  if (!window || window.file !== file || offset < window.start || offset + length > window.start + window.length) {
    const buf = window?.buf ?? Buffer.allocUnsafe(WINDOW);
    let got = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, got, WINDOW - got, offset + got);
      if (n === 0) break;
      got += n;
      if (got === WINDOW) break;
    }
    window = { file, buf, start: offset, length: got };
    if (got < length) throw new Error(`${file} ended at ${offset + got}`);
  }
  const at = offset - window.start;
  return crc32(window.buf.subarray(at, at + length)) >>> 0;
}

/**
 * CRC-32 of a range of a file as it is on disk now. Large ranges are read in one helper thread
 * per process (created on first use and kept), so a conversion checks storage k while it copies
 * storage k+1; small ones are read at once.
 */
export function readBackCrc(file: string, offset: number, length: number): Promise<number> {
  const crc = readBackCrcNow(file, offset, length);
  return typeof crc === 'number' ? Promise.resolve(crc) : crc;
}

/**
 * `readBackCrc`, with the CRC itself for a range read at once (no promise each for the 500,000
 * one-element storages of a checkpoint of many small tensors).
 */
export function readBackCrcNow(file: string, offset: number, length: number): number | Promise<number> {
  if (length < INLINE_BYTES) {
    let fd = inlineFds.get(file);
    if (fd === undefined) {
      fd = fs.openSync(file, 'r');
      inlineFds.set(file, fd);
    }
    if (length <= WINDOW_READ_BYTES) {
      try {
        return windowCrc(file, fd, offset, length);
      } catch (e) {
        return abandonable(Promise.reject(e));
      }
    }
    // one reused buffer: a fresh one per storage costs page faults and GC in a batch of small files
    inlineBuffer ??= Buffer.allocUnsafe(STREAM_CHUNK);
    let crc = 0;
    for (let done = 0; done < length; ) {
      const n = fs.readSync(fd, inlineBuffer, 0, Math.min(STREAM_CHUNK, length - done), offset + done);
      if (n === 0) return abandonable(Promise.reject(new Error(`${file} ended at ${offset + done}`)));
      crc = crc32(inlineBuffer.subarray(0, n), crc);
      done += n;
    }
    return crc >>> 0;
  }
  shared ??= new ByteVerifier();
  return abandonable(shared.crc(file, offset, length));
}

/**
 * A cancelled or failed write abandons the read-backs it requested and removes its temporary
 * file, so they may reject unawaited; an unhandled rejection would kill the pool worker and report
 * "the worker running this job stopped" instead of the write's own error. Whoever awaits the
 * promise still sees the rejection.
 */
function abandonable(crc: Promise<number>): Promise<number> {
  crc.catch(() => undefined);
  return crc;
}

/** Lets the helper close its descriptor of a file that is done (or removed). */
export function releaseReadBack(file: string): void {
  if (window?.file === file) window = null;
  const fd = inlineFds.get(file);
  if (fd !== undefined) fs.closeSync(fd);
  inlineFds.delete(file);
  shared?.release(file);
}

/** CRC-32 of file ranges computed in a helper thread (see main/io/crc-worker.ts). */
export class ByteVerifier {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve(crc: number): void; reject(e: Error): void }>();
  private next = 0;
  constructor() {
    this.worker = startWorker('crc-worker', new URL('./crc-worker.ts', import.meta.url), import.meta.url);
    this.worker.unref(); // an idle helper never keeps the process alive
    this.worker.on('message', (m: { id: number; crc?: number; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(m.error));
      else w?.resolve(m.crc!);
    });
    this.worker.on('error', (e) => {
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    });
  }
  crc(file: string, offset: number, length: number): Promise<number> {
    const id = this.next++;
    this.worker.ref();
    return new Promise<number>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, file, offset, length });
    }).finally(() => {
      if (this.waiting.size === 0) this.worker.unref();
    });
  }
  release(file: string): void {
    this.worker.postMessage({ close: file });
  }
  close(): Promise<number> {
    return this.worker.terminate();
  }
}
