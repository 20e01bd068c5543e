// writeAllv (main/io/write-all.ts) writes its buffers back to back in one pwritev, and where the
// kernel takes only part of them (a short write) goes on from the exact byte it stopped at.
// tailSha256Of (main/io/tail-hash.ts) hashes through a descriptor already open, as tailSha256 does by name.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeAllv } from '../../../main/io/write-all.ts';
import { tailSha256, tailSha256Of } from '../../../main/io/tail-hash.ts';

/** `fs` as CommonJS sees it: what is set on it reaches the ESM namespace through `syncBuiltinESMExports` */
const mutableFs = createRequire(import.meta.url)('node:fs') as typeof fs;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-write-all-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const bufs = [randomBytes(7), new Uint8Array(0), randomBytes(1000), randomBytes(3)];
const joined = Buffer.concat(bufs);
const AT = 5;

function written(file: string): Buffer {
  return fs.readFileSync(file).subarray(AT);
}

test('writeAllv writes its buffers one after another from the position', () => {
  const file = path.join(dir, 'whole.bin');
  const fd = fs.openSync(file, 'w');
  try {
    writeAllv(fd, bufs, AT);
  } finally {
    fs.closeSync(fd);
  }
  assert.deepEqual(written(file), joined);
});

test('writeAllv after a short pwritev: the rest is written from where it stopped, at every place it can stop', () => {
  const real = fs.writevSync;
  let calls = 0;
  try {
    for (let cut = 0; cut < joined.length; cut += cut < 20 ? 1 : 97) {
      // the kernel takes only the first `cut` bytes
      mutableFs.writevSync = (fd, buffers, position) => {
        calls++;
        const head = Buffer.concat(buffers as Uint8Array[]).subarray(0, cut);
        return fs.writeSync(fd, head, 0, head.length, position);
      };
      syncBuiltinESMExports();
      const file = path.join(dir, `short-${cut}.bin`);
      const fd = fs.openSync(file, 'w');
      try {
        writeAllv(fd, bufs, AT);
      } finally {
        fs.closeSync(fd);
      }
      assert.deepEqual(written(file), joined, `stopped after ${cut} bytes`);
      assert.ok(calls > 0, 'writeAllv went through the short pwritev');
      calls = 0;
    }
  } finally {
    mutableFs.writevSync = real;
    syncBuiltinESMExports();
  }
});

test('tailSha256Of through an open descriptor equals tailSha256 by name; null past the size', () => {
  const file = path.join(dir, 'tail.bin');
  const bytes = randomBytes(4096);
  fs.writeFileSync(file, bytes);
  const fd = fs.openSync(file, 'r');
  try {
    for (const n of [0, 1, 100, 4096]) {
      const want = createHash('sha256')
        .update(bytes.subarray(4096 - n))
        .digest('hex');
      assert.equal(tailSha256Of(fd, 4096, n), want, `last ${n} bytes`);
      assert.equal(tailSha256(file, n), want);
    }
    assert.equal(tailSha256Of(fd, 4096, 4097), null);
    assert.equal(tailSha256(file, 4097), null);
    // a size larger than the file (it shrank): the read comes up short, null rather than a wrong hash
    assert.equal(tailSha256Of(fd, 8192, 100), null);
  } finally {
    fs.closeSync(fd);
  }
});
