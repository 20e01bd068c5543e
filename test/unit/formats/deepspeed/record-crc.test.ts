// The torch writer no longer CRCs an assembled flat storage (DeepSpeed's params) a second time:
// the zip record's CRC is its slices' CRCs, taken as they were read, combined. Every record of the
// written file must still carry the CRC-32 of the bytes it holds (torch's reader checks it), so
// each record's CRC in the written file is compared with a CRC of its bytes read from the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { rootStorage } from '../../../../main/checkpoint/inspect.ts';
import { walkTensors } from '../../../../main/checkpoint/tree.ts';
import { writeTorchCheckpoint } from '../../../../main/convert/write-checkpoint.ts';
import { readDeepSpeedFolder } from '../../../../main/formats/deepspeed/read-deepspeed.ts';
import { openFormat } from '../../../../main/formats/open-format.ts';
import { FileReader } from '../../../../main/io/random-access.ts';
import { assemblyOf } from '../../../../main/formats/values/virtual-tensor.ts';
import { DEEPSPEED_DIR as DS, deepSpeedVariants, sharedSkipReason } from '../../../helpers/shared-dir.ts';

const skip = sharedSkipReason(DS) ?? false;
const VARIANTS = skip ? [] : deepSpeedVariants();

for (const v of VARIANTS) {
  test(`${v}: every storage record written from slices carries the CRC-32 of its bytes`, () => {
    const r = readDeepSpeedFolder(path.join(DS, v, 'checkpoint'));
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'ds-crc-'));
    const file = path.join(dir, 'out.pt');
    const fd = fs.openSync(file, 'w');
    try {
      const assembled = walkTensors(r.root).filter((t) => t.tensor.storage && assemblyOf(rootStorage(t.tensor.storage))).length;
      assert.ok(assembled >= 8, `${assembled} params are assembled from slices`);
      const written = writeTorchCheckpoint(fd, r.root, { archiveName: 'out', location: () => 'cpu' });
      fs.closeSync(fd);
      const back = openFormat(file);
      const reader = new FileReader(file);
      try {
        const storages = new Set(walkTensors(back.root).map((t) => rootStorage(t.tensor.storage!)));
        assert.equal(storages.size, written.storages.length);
        for (const s of storages) {
          const { offset, length } = s.locate();
          const bytes = reader.read(offset, length);
          assert.equal(s.recordCrc, zlib.crc32(bytes) >>> 0, `data/${s.key}: the record's CRC is the CRC of its bytes`);
          const w = [...written.storages].find((x) => x.key === s.key)!;
          assert.equal(w.crc32, s.recordCrc, `data/${s.key}: the writer reports the CRC it recorded`);
        }
      } finally {
        reader.close();
        back.close();
      }
    } finally {
      r.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
