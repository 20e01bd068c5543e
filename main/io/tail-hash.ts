import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

/** SHA-256 of the last `bytes` bytes of a file, or null when it is shorter or unreadable. */
export function tailSha256(file: string, bytes: number): string | null {
  let fd = -1;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    if (bytes > size) return null;
    const buf = Buffer.allocUnsafe(bytes);
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(fd, buf, done, bytes - done, size - bytes + done);
      if (n === 0) return null;
      done += n;
    }
    return createHash('sha256').update(buf).digest('hex');
  } catch {
    return null;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
