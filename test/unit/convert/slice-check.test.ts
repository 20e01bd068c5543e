// convert's check of params assembled from DeepSpeed slices: the slices' CRCs combined in offset
// order against the tensor's CRC as read back. Right CRCs pass and count every slice; one wrong
// CRC fails that tensor with one line naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { OutputReport } from '../../../shared/convert.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { checkFlatSlices } from '../../../main/convert/slice-check.ts';
import { readDeepSpeedFolder } from '../../../main/formats/deepspeed/read-deepspeed.ts';
import { streamSource } from '../../../main/formats/values/tensor-source.ts';
import { tensorSource } from '../../../main/formats/values/reshaped-source.ts';
import { SHARED_DIR, sharedSkipReason } from '../../helpers/shared-dir.ts';

const DS = path.join(SHARED_DIR, 'corpus', 'deepspeed');
const skip = sharedSkipReason(DS) ?? false;

test("combined slice CRCs pass when they equal the tensors' CRCs and fail the one that differs", { skip }, () => {
  const r = readDeepSpeedFolder(path.join(DS, 'stage2-ws2-bf16', 'checkpoint'));
  try {
    // the "read back" CRC of each tensor: its bytes streamed once (as the writer does)
    const checks = walkTensors(r.root).map(({ path: p, tensor }) => {
      let crc = 0;
      streamSource(tensorSource(tensor), (c) => (crc = zlib.crc32(c, crc)));
      return {
        path: p,
        sourcePath: p,
        dtype: tensor.dtype.name,
        shape: tensor.shape,
        device: 'cpu',
        crc32: (crc >>> 0).toString(16).padStart(8, '0'),
        ok: true,
      };
    });
    const report: OutputReport = { file: 'x.pt', bytes: 0, storages: 0, tensors: checks.length, verified: true, checks };
    const slices = checkFlatSlices(r.root, report);
    assert.equal(report.verified, true, report.mismatch);
    assert.equal(slices, 11, "the 8 trainable params are 11 slices of the two ranks' partitions");
    const wrong: OutputReport = { ...report, checks: checks.map((c) => (c.path[0] === 'proj_in.weight' ? { ...c, crc32: '00000000' } : { ...c })) };
    checkFlatSlices(r.root, wrong);
    assert.equal(wrong.verified, false);
    assert.match(wrong.mismatch!, /^\["proj_in\.weight"\]: its \d source slices have combined crc32 [0-9a-f]{8}, the tensor reads back with 00000000$/);
  } finally {
    r.close();
  }
});
