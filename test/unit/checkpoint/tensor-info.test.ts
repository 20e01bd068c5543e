// inspect --json writes its tensor list as text made per tensor (TensorInfoWriter), not by
// JSON.stringify of a fresh object per tensor: the text must be the very bytes JSON.stringify
// gives, on real files (every torch fixture, the corpus) and on keys that need escaping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { dtypeByName } from '../../../shared/dtypes.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { tensorInfo, TensorInfoWriter, type StatePaths } from '../../../main/checkpoint/tensor-info.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { PyDict, PyList, PyTuple } from '../../../main/formats/values/python-values.ts';
import { REBUILD_TENSOR_V2, TorchStorage, TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { CORPUS_DIR, sharedSkipReason } from '../../helpers/shared-dir.ts';

/** Every piece of the file's tensor list, as text and as objects, in pieces of `step`. */
function compareFile(file: string, step: number): number {
  let ck;
  try {
    ck = openCheckpoint(file);
  } catch {
    return 0; // files the engine refuses (hostile, truncated, not a checkpoint) have no tensor list
  }
  try {
    const asText = ck.tensorInfoPieces();
    const asObjects = ck.tensorInfoPieces();
    for (let i = 0; i < asText.length; i += step)
      assert.equal(asText.json(i, i + step), JSON.stringify(asObjects.items(i, i + step)).slice(1, -1), `${file} at ${i}`);
    return asText.length;
  } finally {
    ck.close();
  }
}

const CHECKPOINT = /\.(pt|pth|bin|ckpt|safetensors|npz|npy|onnx|pkl|tar)$/;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && CHECKPOINT.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

test('tensor list as text: JSON.stringify of the report.tensors objects, byte for byte, on every checkpoint fixture', () => {
  let tensors = 0;
  let files = 0;
  for (const file of filesUnder('test/fixtures')) {
    const n = compareFile(file, 7);
    tensors += n;
    if (n) files++;
  }
  assert.ok(files > 100 && tensors > 1000, `${files} files, ${tensors} tensors compared`);
});

test('tensor list as text: the same on every corpus file', (t) => {
  const skip = sharedSkipReason();
  if (skip) return t.skip(skip);
  let tensors = 0;
  for (const file of filesUnder(CORPUS_DIR)) tensors += compareFile(file, 4096);
  assert.ok(tensors > 1000, `${tensors} tensors compared`);
});

test('tensor list as text: keys that need escaping, numbers, nested containers, shared and missing storages, state-dict paths', () => {
  const f32 = dtypeByName('float32')!;
  const storage = (key: string): TorchStorage =>
    new TorchStorage(key, 'FloatStorage', f32, 'cuda:1', 64, () => {
      throw new Error('no bytes are read');
    });
  const tensor = (s: TorchStorage | null, shape: number[]): TorchTensor => new TorchTensor(REBUILD_TENSOR_V2, null, 'dense', f32, shape, [1], 2, s);
  const tied = storage('tied "0"');
  const param = tensor(storage('1'), [3, 0]);
  param.isParameter = true;
  param.requiresGrad = true;
  const root = new PyDict(true);
  const keys = ['plain', 'quote"', 'back\\slash', 'new\nline', 'tab\tand\u0001', 'lone \ud800', 'pair 😀', 'line sep \u2028', ''];
  keys.forEach((k, i) => root.set(k, tensor(i % 2 ? tied : storage(`s${i}`), [i, 2])));
  root.set(7, param);
  root.set(new PyTuple(['a', 1]), tensor(null, [5]));
  const nested = new PyDict();
  nested.set('deep\\"', new PyList([tensor(tied, [1]), new PyList([tensor(storage('\u0000'), [])])]));
  root.set('nested', nested);
  const ats = [...walkTensors(root), ...walkTensors(tensor(storage('root'), [4]))];
  assert.ok(ats.some((a) => a.path.length === 0) && ats.some((a) => a.path.length === 4));
  const shared = new Set([tied]);
  const paths = (): StatePaths =>
    new Map([
      [
        param,
        [
          ['m', 'w'],
          ['m', 'tied "w"'],
        ],
      ],
    ]);
  const [forText, forObjects] = [paths(), paths()];
  const writer = new TensorInfoWriter(shared, forText);
  for (const at of [...ats, ...ats]) assert.equal(writer.json(at), JSON.stringify(tensorInfo(at, shared, forObjects)));
  assert.equal(forText.get(param)!.length, 0, 'each listing takes the next state-dict path');

  // as UTF-8 bytes (what `inspect --json` writes to stdout): the same text encoded, from any start, past the first guess of its size
  const [forBytes, forExpected] = [paths(), paths()];
  const bytesWriter = new TensorInfoWriter(shared, forBytes);
  const long = Array.from({ length: 40 }, () => ats).flat();
  const expected = long.map((at) => JSON.stringify(tensorInfo(at, shared, forExpected)));
  assert.equal(Buffer.from(bytesWriter.utf8(long, 0, 1)).toString('utf8'), expected[0]);
  assert.equal(Buffer.from(bytesWriter.utf8(long, 1, long.length)).toString('utf8'), expected.slice(1).join(','));
  assert.deepEqual(Buffer.from(new TensorInfoWriter(shared, paths()).utf8(long, 0, long.length)), Buffer.from(expected.join(','), 'utf8'));
  assert.equal(new TensorInfoWriter(shared, paths()).utf8(long, 3, 3).length, 0, 'an empty range is no bytes');
});
