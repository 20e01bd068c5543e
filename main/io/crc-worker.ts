// A helper thread that computes CRC-32 of byte ranges of files, so a conversion can verify
// storage k while it copies storage k+1.
import * as fs from 'node:fs';
import { crc32 } from './crc32.ts';
import { parentPort } from 'node:worker_threads';

const CHUNK = 1 << 20; // STREAM_CHUNK (random-access.ts), not imported to keep this thread small
const buf = Buffer.allocUnsafe(CHUNK);
const fds = new Map<string, number>();

parentPort!.on('message', (m: { id: number; file: string; offset: number; length: number } | { close: string }) => {
  if ('close' in m) {
    const fd = fds.get(m.close);
    if (fd !== undefined) fs.closeSync(fd);
    fds.delete(m.close);
    return;
  }
  try {
    let fd = fds.get(m.file);
    if (fd === undefined) {
      fd = fs.openSync(m.file, 'r');
      fds.set(m.file, fd);
    }
    let crc = 0;
    let done = 0;
    while (done < m.length) {
      const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, m.length - done), m.offset + done);
      if (n === 0) throw new Error(`file ended at ${m.offset + done}`);
      crc = crc32(buf.subarray(0, n), crc);
      done += n;
    }
    parentPort!.postMessage({ id: m.id, crc: crc >>> 0 });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
