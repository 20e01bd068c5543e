import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

/** SHA-256 of the last `bytes` bytes of a file, or null when it is shorter or unreadable. */
export function tailSha256(file: string, bytes: number): string | null {
  let fd = -1;
  try {
    fd = fs.openSync(file, 'r');
    return tailSha256Of(fd, fs.fstatSync(fd).size, bytes);
  } catch {
    return null;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/** The same through a descriptor already open on a file of `size` bytes (a read-back's own reader). */
export function tailSha256Of(fd: number, size: number, bytes: number): string | null {
  if (bytes > size) return null;
  const buf = Buffer.allocUnsafe(bytes);
  let done = 0;
  try {
    while (done < bytes) {
      const n = fs.readSync(fd, buf, done, bytes - done, size - bytes + done);
      if (n === 0) return null;
      done += n;
    }
  } catch {
    return null;
  }
  return createHash('sha256').update(buf).digest('hex');
}
