// convert's check of params assembled from DeepSpeed slices: the slices' CRCs combined in offset
// order against the tensor's CRC as read back. Right CRCs pass and count every slice; one wrong
// CRC fails that tensor with one line naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import type { OutputResult } from '../../../main/convert/read-back-match.ts';
import { checkFlatSlices } from '../../../main/convert/slice-check.ts';
import { TensorChecks } from '../../../main/convert/tensor-checks.ts';
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
    const tensors = walkTensors(r.root);
    const crcs = tensors.map(({ tensor }) => {
      let crc = 0;
      streamSource(tensorSource(tensor), (c) => (crc = zlib.crc32(c, crc)));
      return crc >>> 0;
    });
    const reportWith = (crcOf: (i: number) => number): OutputResult => {
      const checks = new TensorChecks(tensors);
      for (let i = 0; i < tensors.length; i++) {
        checks.setDevice(i, 'cpu');
        checks.setCrc(i, crcOf(i));
      }
      return { file: 'x.pt', bytes: 0, storages: 0, tensors: tensors.length, verified: true, checks };
    };
    const report = reportWith((i) => crcs[i]!);
    const slices = checkFlatSlices(r.root, report);
    assert.equal(report.verified, true, report.mismatch);
    assert.equal(slices, 11, "the 8 trainable params are 11 slices of the two ranks' partitions");
    const wrong = reportWith((i) => (tensors[i]!.path[0] === 'proj_in.weight' ? 0 : crcs[i]!));
    checkFlatSlices(r.root, wrong);
    assert.equal(wrong.verified, false);
    assert.match(wrong.mismatch!, /^\["proj_in\.weight"\]: its \d source slices have combined crc32 [0-9a-f]{8}, the tensor reads back with 00000000$/);
    const failed = wrong.checks.toArray().filter((c) => !c.ok);
    assert.deepEqual(
      failed.map((c) => [c.path, c.crc32]),
      [[['proj_in.weight'], '00000000']],
      'only that tensor fails, with the CRC it read back with',
    );
  } finally {
    r.close();
  }
});
