// Verifying a written DCP folder: storage records read back while the folder is written (in the
// CRC helper thread, as convert does) give the same verdict as reading them back afterwards, and a
// byte changed on disk after that read-back is still caught when the folder is read back whole.
// Source tensors lying in one piece of a checkpoint file are CRC'd from that file in the helper.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, openSync, readSync, rmSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { dtypeByName } from '../../../shared/dtypes.ts';
import { readBackCrc, releaseReadBack } from '../../../main/io/byte-verifier.ts';
import { writeDcpFolder, type DcpWriteItem } from '../../../main/formats/dcp/dcp-writer.ts';
import { BufferReader } from '../../../main/io/random-access.ts';
import { ViewSource } from '../../../main/formats/values/tensor-source.ts';
import { REBUILD_TENSOR_V2, TorchStorage, TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { dcpReadBackKey, verifyDcp, type DcpReadBack } from '../../../main/reshard/read-back.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { openFormat } from '../../../main/formats/open-format.ts';
import { fx, tmp } from './helpers.ts';

const work = tmp('ckpt-dcp-verify-');
after(() => rmSync(work, { recursive: true, force: true }));

const f32 = dtypeByName('float32')!;
const ROWS = 2048;
const COLS = 1024; // 8 MiB: each 4 MiB chunk is read back in the helper thread, not inline

function items(): DcpWriteItem[] {
  const values = new Float32Array(ROWS * COLS).map((_, i) => Math.sin(i) * 1000);
  const bytes = new Uint8Array(values.buffer);
  const storage = new TorchStorage('w', 'FloatStorage', f32, 'cpu', values.length, () => ({
    reader: new BufferReader(bytes),
    offset: 0,
    length: bytes.length,
  }));
  const tensor = new TorchTensor(REBUILD_TENSOR_V2, [], 'dense', f32, [ROWS, COLS], [COLS, 1], 0, storage);
  return [
    { kind: 'bytes', fqn: 'step', path: ['step'], value: 1000, rank: 0 },
    {
      kind: 'tensor',
      fqn: 'model.weight',
      path: ['model', 'weight'],
      source: new ViewSource(tensor),
      requiresGrad: false,
      chunks: [
        { offsets: [0, 0], sizes: [ROWS / 2, COLS], rank: 0 },
        { offsets: [ROWS / 2, 0], sizes: [ROWS / 2, COLS], rank: 1 },
      ],
    },
  ];
}

test('read back while writing, or afterwards: the same verified folder and chunk CRCs; a byte changed later is caught', async () => {
  const dir = join(work, 'out');
  mkdirSync(dir);
  const planned = items();
  const readBack: DcpReadBack = new Map();
  const files = new Set<string>();
  const result = await writeDcpFolder(dir, planned, 2, {
    onStorageWritten: (file, offset, nbytes) => {
      files.add(file);
      readBack.set(dcpReadBackKey(file, offset, nbytes), readBackCrc(file, offset, nbytes));
    },
  });
  try {
    assert.equal(readBack.size, 2, 'one read-back per tensor chunk; the bytes item has no storage');
    const during = await verifyDcp(dir, 'out', planned, result, {}, readBack);
    const afterwards = await verifyDcp(dir, 'out', planned, result, {});
    assert.ok(during.verified, during.mismatch);
    assert.deepEqual(during, afterwards);
    assert.match(during.checks.find((c) => c.name === 'model.weight')!.crc32, /^[0-9a-f]{8} [0-9a-f]{8}$/, "both chunks' CRCs");

    // one byte of rank 1's chunk changed after the write-time read-back
    const w = result.items.find((i) => i.fqn === 'model.weight' && i.offsets![0] === ROWS / 2)!;
    const at = w.offset + w.storages[0]!.dataOffset + 12345;
    const fd = openSync(join(dir, w.file), 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x40;
    writeSync(fd, b, 0, 1, at);
    closeSync(fd);
    const stale = await verifyDcp(dir, 'out', planned, result, {}, readBack);
    assert.equal(stale.verified, false, 'the whole-folder read-back catches what the early read-back could not');
    assert.match(stale.mismatch!, /^model\.weight: read back as one tensor it has crc32 [0-9a-f]{8}, the source's is [0-9a-f]{8}$/);
    const fresh = await verifyDcp(dir, 'out', planned, result, {});
    assert.equal(fresh.verified, false);
    assert.match(fresh.mismatch!, /^model\.weight: storage bytes read back have crc32 [0-9a-f]{8}, the source's are [0-9a-f]{8}$/);
  } finally {
    for (const f of files) releaseReadBack(f);
  }
});

/** Flips one bit of a file at `at`. */
function flip(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x01;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

test("source tensors of a checkpoint file are CRC'd from the file itself: a source changed after writing fails the check", async () => {
  const src = join(work, 'cpu_state_dict.pt');
  copyFileSync(fx('torch/cpu_state_dict.pt'), src);
  const reading = openFormat(src);
  try {
    const planned: DcpWriteItem[] = walkTensors(reading.root).map(({ path, tensor }) => ({
      kind: 'tensor',
      fqn: path.join('.'),
      path,
      source: new ViewSource(tensor),
      requiresGrad: false,
      chunks: [{ offsets: tensor.shape.map(() => 0), sizes: [...tensor.shape], rank: 0 }],
    }));
    const ranges = planned.map((it) => (it.kind === 'tensor' ? (it.source as ViewSource).fileRange() : null));
    assert.ok(planned.length >= 8 && ranges.every((r) => r && r.file === src), 'every tensor lies in one piece of the file');
    const dir = join(work, 'from-file');
    mkdirSync(dir);
    const result = await writeDcpFolder(dir, planned, 1);
    const ok = await verifyDcp(dir, 'from-file', planned, result, {});
    assert.ok(ok.verified, ok.mismatch);

    // the largest tensor's bytes changed in the source file after the folder was written
    const i = ranges.reduce((best, r, k) => (r!.length > ranges[best]!.length ? k : best), 0);
    flip(src, ranges[i]!.offset + 5);
    const changed = await verifyDcp(dir, 'from-file', planned, result, {});
    assert.equal(changed.verified, false);
    assert.equal(changed.mismatch!.split(':')[0], planned[i]!.fqn);
    assert.match(changed.mismatch!, /read back as one tensor it has crc32 [0-9a-f]{8}, the source's is [0-9a-f]{8}$/);
  } finally {
    reading.close();
    releaseReadBack(src);
  }
});
