// Atomic writes with flushing behind the writer: a 40 MiB file starts early fdatasyncs and is
// published whole; an early flush that fails (a write-back error such as EIO) fails the file,
// even though the final fsync would succeed, and nothing is left behind. The bytes a thread holds
// written but unpublished are counted while they wait on the disk, and only then.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
import { bytesWaitingOnDisk, writeCheckedAtomically } from '../../../main/io/atomic-file.ts';
import { writeAll } from '../../../main/io/write-all.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-atomic-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;
const chunk = Buffer.alloc(MiB, 7);
/** Writes 40 MiB through writeAll, as the checkpoint writers do. */
const write40 = (fd: number): number => {
  for (let i = 0; i < 40; i++) writeAll(fd, chunk, i * MiB);
  return 40 * MiB;
};

/** Runs `fn` with fs.fdatasync replaced (the writer calls it through the fs module). */
async function withFdatasync<T>(fake: typeof fs.fdatasync, fn: () => Promise<T>): Promise<T> {
  const real = fs.fdatasync;
  fs.fdatasync = fake;
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    fs.fdatasync = real;
    syncBuiltinESMExports();
  }
}

test('a 40 MiB file is flushed behind the writer, then published whole', async () => {
  let early = 0;
  const dest = path.join(dir, 'big.bin');
  const real = fs.fdatasync;
  const r = await withFdatasync(
    ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
      early++;
      real(fd, cb);
    }) as typeof fs.fdatasync,
    () => writeCheckedAtomically(dest, false, write40, async (_tmp, n) => ({ value: n, publish: true })),
  );
  assert.deepEqual(r, { value: 40 * MiB, published: true });
  assert.equal(early, 1, 'one early flush after the first 32 MiB');
  assert.equal(fs.statSync(dest).size, 40 * MiB);
});

test('a failed early flush fails the file: typed error, no destination, no temporary file', async () => {
  const dest = path.join(dir, 'eio.bin');
  const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
  await assert.rejects(
    withFdatasync(((_fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => void setImmediate(() => cb(eio))) as unknown as typeof fs.fdatasync, () =>
      writeCheckedAtomically(dest, false, write40, async (_tmp, n) => ({ value: n, publish: true })),
    ),
    (e: Error & { kind?: string }) => e.kind === 'io' && /eio\.bin: the device reported an input\/output error/.test(e.message) && !/\n/.test(e.message),
  );
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.includes('eio')),
    [],
  );
});

test('the bytes of a written file count as waiting on the disk from its fsync and check to its publishing, or its failure', async () => {
  assert.equal(bytesWaitingOnDisk(), 0);
  const seen: number[] = [];
  let atWritten = -1;
  await writeCheckedAtomically(
    path.join(dir, 'counted.bin'),
    false,
    write40,
    async () => {
      seen.push(bytesWaitingOnDisk());
      return { value: null, publish: true };
    },
    { onWritten: () => void (atWritten = bytesWaitingOnDisk()) },
  );
  assert.equal(atWritten, 40 * MiB, 'counted when the pool is told the job waits');
  assert.deepEqual(seen, [40 * MiB], 'and while it is checked');
  assert.equal(bytesWaitingOnDisk(), 0, 'not once published');
  await assert.rejects(
    writeCheckedAtomically(path.join(dir, 'refused.bin'), false, write40, async () => {
      throw new Error('check failed');
    }),
    /check failed/,
  );
  assert.equal(bytesWaitingOnDisk(), 0, 'not after a failed check');
  assert.ok(!fs.existsSync(path.join(dir, 'refused.bin')));
});
