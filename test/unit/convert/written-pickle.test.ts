// The read-back's light decoder (decodeWrittenPickle) against the full reader, on real torch.save
// files: where it decodes a file at all, it finds the same tensors at the same paths with the same
// dtype, shape, stride, offset, storage key, class, location and size as `openFormat` does; files
// with objects or parameters it leaves to the full reader. Damaged pickles are malformed, not read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { openFormat } from '../../../main/formats/open-format.ts';
import { openTorchArchive } from '../../../main/formats/torch/torch-zip.ts';
import { FileReader } from '../../../main/io/random-access.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { rootStorage } from '../../../main/checkpoint/inspect.ts';
import { decodeWrittenPickle, WrittenDict, WrittenList, WrittenTensor, WrittenTuple, type WrittenValue } from '../../../main/convert/written-pickle.ts';

const DIR = 'test/fixtures/torch';
const zipFiles = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.pt'))
  .map((f) => `${DIR}/${f}`)
  .filter((f) => fs.readFileSync(f).subarray(0, 2).toString('latin1') === 'PK');

function dataPkl(file: string): Uint8Array {
  const reader = new FileReader(file);
  try {
    const a = openTorchArchive(reader);
    return a.zip.readPickleRecord(a.zip.get(`${a.prefix}data.pkl`)!);
  } finally {
    reader.close();
  }
}

/** The decoded tensors with paths, as walkTensors walks dicts, lists and tuples. */
function tensors(v: WrittenValue, path: (string | number)[] = [], out: [string, WrittenTensor][] = []): [string, WrittenTensor][] {
  if (v instanceof WrittenTensor) out.push([JSON.stringify(path), v]);
  else if (v instanceof WrittenDict) v.keys.forEach((k, i) => tensors(v.values[i]!, [...path, k as string | number], out));
  else if (v instanceof WrittenList || v instanceof WrittenTuple) v.items.forEach((x, i) => tensors(x, [...path, i], out));
  return out;
}

test('decodeWrittenPickle: the same tensors as the full reader on every plain torch zip fixture', () => {
  let decoded = 0;
  for (const file of zipFiles) {
    const r = decodeWrittenPickle(dataPkl(file));
    assert.ok(!('malformed' in r), `${file}: ${'malformed' in r ? r.malformed : ''}`);
    if (!('value' in r)) continue;
    decoded++;
    const full = openFormat(file);
    try {
      const want = walkTensors(full.root).map(({ path, tensor }) => {
        const s = rootStorage(tensor.storage!);
        return [
          JSON.stringify(path),
          [tensor.dtype.name, tensor.shape, tensor.stride, tensor.storageOffset, tensor.requiresGrad, s.key, s.storageType, s.location, s.nbytes],
        ];
      });
      const got = tensors(r.value).map(([path, t]) => [
        path,
        [
          t.dtype,
          t.shape,
          t.stride,
          t.storageOffset,
          t.requiresGrad,
          t.storage.key,
          t.storage.storageClass,
          t.storage.location,
          t.storage.numel * t.storage.itemSize,
        ],
      ]);
      assert.deepEqual(got, want, file);
    } finally {
      full.close();
    }
  }
  assert.ok(decoded >= 7, `decoded ${decoded} of ${zipFiles.length} fixtures (state dicts of every dtype and device)`);
});

test('decodeWrittenPickle: objects go to the full reader; damaged bytes are malformed', () => {
  const whole = decodeWrittenPickle(dataPkl(`${DIR}/whole_model.pt`));
  assert.ok('unsupported' in whole, 'a pickled module is left to the full reader');
  const good = dataPkl(`${DIR}/cpu_state_dict.pt`);
  const cut = decodeWrittenPickle(good.subarray(0, good.length - 1)); // no STOP
  assert.ok('malformed' in cut && /ends inside/.test(cut.malformed), JSON.stringify(cut));
  const bad = Buffer.from(good);
  const get = bad.indexOf(0x68); // the first BINGET, pointed at a memo entry never put
  bad[get + 1] = 0xff;
  const r = decodeWrittenPickle(bad);
  assert.ok('malformed' in r, JSON.stringify(Object.keys(r)));
});
