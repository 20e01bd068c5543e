// Read-back CRCs: equal to zlib's over the bytes on disk, inline and in the helper thread. A
// cancelled or failed write abandons the read-backs it requested and removes its temporary file;
// their rejections must not surface as unhandled, which in a pool worker kills the thread and
// turns "cancelled" into "the worker running this job stopped (ENOENT …)".
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { readBackCrc, releaseReadBack } from '../../../main/io/byte-verifier.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-readback-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;

test('read-back CRCs equal zlib over the file, small ranges inline and large ones in the helper', async () => {
  const file = path.join(dir, 'data.bin');
  const bytes = Buffer.alloc(9 * MiB);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 11)) & 0xff;
  fs.writeFileSync(file, bytes);
  try {
    assert.equal(await readBackCrc(file, 100, 4096), zlib.crc32(bytes.subarray(100, 4196)) >>> 0);
    assert.equal(await readBackCrc(file, 7, 8 * MiB + 3), zlib.crc32(bytes.subarray(7, 8 * MiB + 10)) >>> 0);
    await assert.rejects(readBackCrc(file, 9 * MiB - 10, 20), /ended at/);
  } finally {
    releaseReadBack(file);
  }
});

test('an abandoned read-back of a removed file rejects to whoever awaits it, and is never unhandled', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => {
    unhandled.push(e);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    const file = path.join(dir, 'abandoned.bin');
    fs.writeFileSync(file, Buffer.alloc(16 * MiB, 1));
    const missing = path.join(dir, 'never-written.bin');
    // requested as a writer does after each storage, then abandoned: the write was cancelled
    readBackCrc(missing, 0, 8 * MiB);
    assert.throws(() => readBackCrc(missing, 0, 4096), /ENOENT/, 'a small one fails at once, in the writer');
    const awaited = readBackCrc(missing, 0, 8 * MiB);
    await assert.rejects(awaited, /ENOENT/);
    await sleep(50);
    releaseReadBack(file);
    releaseReadBack(missing);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
