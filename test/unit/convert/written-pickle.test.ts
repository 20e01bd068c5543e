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
import {
  decodeWritten,
  decodeWrittenPickle,
  WrittenDict,
  WrittenList,
  WrittenTensor,
  WrittenTuple,
  type WrittenValue,
} from '../../../main/convert/written-pickle.ts';

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

/** The items `decodeWritten` streams, each walked (marked in `walked`) before the next is asked for. */
function streamed(b: Uint8Array): { items: [WrittenValue, WrittenValue][]; result: ReturnType<typeof decodeWrittenPickle> } {
  const walked = new WeakSet<object>();
  const mark = (v: WrittenValue): void => {
    if (v === null || typeof v !== 'object' || walked.has(v)) return;
    walked.add(v);
    if (v instanceof WrittenDict) v.values.forEach(mark);
    else if (v instanceof WrittenList || v instanceof WrittenTuple) v.items.forEach(mark);
  };
  const items: [WrittenValue, WrittenValue][] = [];
  const decoding = decodeWritten(b, walked);
  for (;;) {
    const step = decoding.next();
    if (step.done) return { items, result: step.value };
    items.push([step.value.key, step.value.value]);
    mark(step.value.value);
  }
}

test('decodeWritten: streams the top-level items of every plain fixture, the same as the whole decoding', () => {
  let streams = 0;
  for (const file of zipFiles) {
    const whole = decodeWrittenPickle(dataPkl(file));
    const s = streamed(dataPkl(file));
    if (!('value' in whole)) continue;
    assert.ok('value' in s.result, file);
    const root = whole.value;
    const want =
      root instanceof WrittenDict ? root.keys.map((k, i) => [k, root.values[i]]) : root instanceof WrittenList ? root.items.map((v, i) => [i, v]) : [];
    assert.equal(s.result.streamed, want.length > 0, file);
    assert.deepEqual(tensors(new WrittenTuple(s.items.map(([, v]) => v))), tensors(new WrittenTuple(want.map(([, v]) => v as WrittenValue))), file);
    assert.deepEqual(
      s.items.map(([k]) => k),
      want.map(([k]) => k),
      file,
    );
    if (want.length) streams++;
  }
  assert.ok(streams >= 7, `streamed ${streams} fixtures`);
});

// hand-made pickles: protocol 2, opcodes as pickle.py names them
const P = {
  proto: [0x80, 2],
  emptyDict: [0x7d],
  emptyList: [0x5d],
  none: [0x4e],
  put: (i: number) => [0x71, i],
  get: (i: number) => [0x68, i],
  str: (s: string) => [0x58, s.length, 0, 0, 0, ...Buffer.from(s)],
  setitem: [0x73],
  append: [0x61],
  tuple1: [0x85],
  stop: [0x2e],
};
const pickle = (...ops: number[][]): Uint8Array => Uint8Array.from(ops.flat());

test('decodeWritten: a container changed after it was streamed, or the top level moved, is left to the full reader', () => {
  // {'a': l, 'b': l} with None appended to l between: streamed, 'a' would be checked before l changed
  const changedLater = pickle(
    P.proto,
    P.emptyDict,
    P.put(0),
    P.str('a'),
    P.emptyList,
    P.put(1),
    P.setitem,
    P.str('b'),
    P.get(1),
    P.none,
    P.append,
    P.setitem,
    P.stop,
  );
  const whole = decodeWrittenPickle(changedLater);
  assert.ok('value' in whole && whole.value instanceof WrittenDict && (whole.value.values[0] as WrittenList).items.length === 1);
  assert.ok('unsupported' in streamed(changedLater).result);
  // ({'a': None},): the dict's items were streamed as the top level's, then it went into a tuple
  const plain = streamed(pickle(P.proto, P.emptyDict, P.str('a'), P.none, P.setitem, P.stop));
  assert.ok('value' in plain.result && plain.result.streamed && plain.items.length === 1, 'a None popped is not the top level moving');
  const moved = pickle(P.proto, P.emptyDict, P.str('a'), P.none, P.setitem, P.tuple1, P.stop);
  assert.ok('value' in decodeWrittenPickle(moved));
  assert.ok('unsupported' in streamed(moved).result);
});
