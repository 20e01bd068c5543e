// A compare thread of `ckpt diff` (compare-pool.ts): checks pieces of tensor pairs for equal
// bytes, or computes their difference figures, reading both files by descriptor.
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { newScratch, sameBytesIn, statsIn, type CompareReply, type CompareRequest, type FileSide, type Side } from './block-compare.ts';

const scratch = newScratch();
const fds = new Map<string, number>();

function sideOf(s: FileSide): Side {
  let fd = fds.get(s.file);
  if (fd === undefined) {
    fd = fs.openSync(s.file, 'r');
    fds.set(s.file, fd);
  }
  const descriptor = fd;
  return {
    dtype: s.dtype,
    size: s.size,
    read: (first, count, out) => {
      const len = count * s.size;
      const at = s.offset + first * s.size;
      let done = 0;
      while (done < len) {
        const n = fs.readSync(descriptor, out, done, len - done, at + done);
        if (n === 0) throw new Error(`${s.file}: the file ended at byte ${at + done}; was it changed while being compared?`);
        done += n;
      }
    },
  };
}

parentPort!.on('message', (m: CompareRequest) => {
  if (m.op === 'end') {
    for (const fd of fds.values()) fs.closeSync(fd);
    fds.clear();
    parentPort!.close();
    return;
  }
  let reply: CompareReply;
  try {
    if (m.op === 'equal') {
      const unequal: number[] = [];
      m.pieces.forEach((p, i) => {
        if (!sameBytesIn(sideOf(p.a), sideOf(p.b), p.first, p.count, scratch)) unequal.push(i);
      });
      reply = { id: m.id, unequal };
    } else reply = { id: m.id, stats: m.pieces.map((p) => statsIn(sideOf(p.a), sideOf(p.b), p.first, p.count, scratch)) };
  } catch (e) {
    reply = { id: m.id, error: (e as Error).message };
  }
  parentPort!.postMessage(reply);
});
