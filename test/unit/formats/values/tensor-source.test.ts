// The streaming element sources every re-shard is built on: strided views of storages on disk,
// global tensors assembled from boxes, boxes cut out of tensors. Checked against plain index
// arithmetic on synthetic data, and against torch's own bytes for real strided views.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dtypeByName } from '../../../../shared/dtypes.ts';
import { CheckpointError } from '../../../../main/errors.ts';
import { openFormat } from '../../../../main/formats/open-format.ts';
import { PyDict } from '../../../../main/formats/values/python-values.ts';
import { BufferReader } from '../../../../main/io/random-access.ts';
import {
  AssembledSource,
  BoxSource,
  SourceReader,
  ViewSource,
  numelOf,
  readRange,
  type Piece,
  type TensorSource,
} from '../../../../main/formats/values/tensor-source.ts';
import { REBUILD_TENSOR_V2, TorchStorage, TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { fx, sha } from '../../reshard/helpers.ts';

const f32 = dtypeByName('float32')!;

/** A float32 tensor view over `values` (the storage), with the given layout. */
function view(values: number[], shape: number[], stride: number[], offset = 0): TorchTensor {
  const bytes = new Uint8Array(new Float32Array(values).buffer);
  const storage = new TorchStorage('s', 'FloatStorage', f32, 'cpu', values.length, () => ({
    reader: new BufferReader(bytes),
    offset: 0,
    length: bytes.length,
  }));
  return new TorchTensor(REBUILD_TENSOR_V2, [], 'dense', f32, shape, stride, offset, storage);
}

function read(src: TensorSource, first = 0, count = src.numel): number[] {
  const out = new Uint8Array(count * 4);
  src.readElements(first, count, out, 0);
  return [...new Float32Array(out.buffer)];
}

/** The element at a multi-index of a strided view, the naive way. */
function naive(t: TorchTensor, values: number[]): number[] {
  const out: number[] = [];
  const idx = t.shape.map(() => 0);
  for (let n = 0; n < t.numel; n++) {
    out.push(values[t.storageOffset + idx.reduce((a, i, d) => a + i * t.stride[d]!, 0)]!);
    for (let d = t.shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('ViewSource: contiguous, transposed, strided and offset views give torch.contiguous() order, in any range', () => {
  const values = range(60);
  const cases: [number[], number[], number][] = [
    [[3, 4, 5], [20, 5, 1], 0],
    [[5, 4, 3], [1, 5, 20], 0], // full transpose
    [[3, 2, 5], [20, 10, 1], 0], // every other row
    [[2, 3], [1, 10], 7], // transposed window with an offset
    [[4, 1, 5], [10, 99, 2], 1], // size-1 dim with a meaningless stride, stride-2 columns
    [[], [], 13], // 0-d
  ];
  for (const [shape, stride, offset] of cases) {
    const t = view(values, shape, stride, offset);
    const want = naive(t, values);
    assert.deepEqual(read(new ViewSource(t)), want, `shape [${shape}] stride [${stride}]`);
    for (const [a, b] of [
      [0, 1],
      [1, 3],
      [want.length - 2, 2],
    ] as const) {
      if (a < 0 || a + b > want.length) continue;
      assert.deepEqual(read(new ViewSource(t), a, b), want.slice(a, a + b), `range ${a}+${b} of [${shape}]`);
    }
  }
});

test('ViewSource on real torch views (views.pt): the bytes hash as torch hashed t.contiguous()', () => {
  const exp = JSON.parse(readFileSync(fx('torch/views.expected.json'), 'utf8')) as { tensors: { path: string[]; sha256: string }[] };
  const r = openFormat(fx('torch/views.pt'));
  try {
    for (const e of exp.tensors) {
      const t = (r.root as PyDict).get(e.path[0]!) as TorchTensor;
      assert.equal(sha(t), e.sha256, e.path.join('/'));
    }
  } finally {
    r.close();
  }
});

/** Cuts a box into pieces by random guillotine cuts. */
function cut(offsets: number[], sizes: number[], depth: number, rnd: () => number): { offsets: number[]; sizes: number[] }[] {
  const dims = sizes.map((s, d) => (s > 1 ? d : -1)).filter((d) => d >= 0);
  if (depth === 0 || !dims.length) return [{ offsets, sizes }];
  const d = dims[Math.floor(rnd() * dims.length)]!;
  const at = 1 + Math.floor(rnd() * (sizes[d]! - 1));
  const a = { offsets: [...offsets], sizes: [...sizes] };
  const b = { offsets: [...offsets], sizes: [...sizes] };
  a.sizes[d] = at;
  b.offsets[d]! += at;
  b.sizes[d] = sizes[d]! - at;
  return [...cut(a.offsets, a.sizes, depth - 1, rnd), ...cut(b.offsets, b.sizes, depth - 1, rnd)];
}

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

test('AssembledSource: a global tensor from random boxes (some stored transposed) reads back exactly, whole and in ranges', () => {
  const shape = [7, 5, 6];
  const strides = [30, 6, 1];
  const global = range(numelOf(shape));
  for (let seed = 1; seed <= 12; seed++) {
    const rnd = lcg(seed);
    const boxes = cut([0, 0, 0], shape, 1 + (seed % 4), rnd);
    const pieces: Piece[] = boxes.map((b, i) => {
      // the piece's values, row-major, then stored either as they are or transposed
      const vals = naive(
        view(
          global,
          b.sizes,
          strides,
          b.offsets.reduce((a, o, d) => a + o * strides[d]!, 0),
        ),
        global,
      );
      const st = [b.sizes[1]! * b.sizes[2]!, b.sizes[2]!, 1];
      if (i % 2 === 0) return { offsets: b.offsets, sizes: b.sizes, label: `box${i}`, source: new ViewSource(view(vals, b.sizes, st)) };
      // stored with dims reversed: element (x, y, z) at z*S0*S1 + y*S0 + x
      const rev = new Array<number>(vals.length);
      for (let x = 0; x < b.sizes[0]!; x++)
        for (let y = 0; y < b.sizes[1]!; y++)
          for (let z = 0; z < b.sizes[2]!; z++) rev[z * b.sizes[0]! * b.sizes[1]! + y * b.sizes[0]! + x] = vals[x * st[0]! + y * st[1]! + z]!;
      return { offsets: b.offsets, sizes: b.sizes, label: `box${i}`, source: new ViewSource(view(rev, b.sizes, [1, b.sizes[0]!, b.sizes[0]! * b.sizes[1]!])) };
    });
    const a = new AssembledSource(f32, shape, pieces, `seed ${seed}`);
    assert.deepEqual(read(a), global, `seed ${seed}: ${boxes.length} pieces`);
    assert.deepEqual(read(a, 29, 40), global.slice(29, 69));
    // and as a file, in odd byte ranges (the writer's view of it)
    const file = new SourceReader(a, 'assembled');
    const bytes = new Uint8Array(new Float32Array(global).buffer);
    assert.deepEqual([...file.read(13, 101)], [...bytes.subarray(13, 114)]);
    // readRange (the writers' copy loop): whole elements go straight into the output buffer,
    // odd ranges through read(); the same bytes either way, at an offset into the buffer
    for (const [at, n] of [
      [0, bytes.length],
      [28, 160],
      [13, 101],
      [4, 3],
    ] as const) {
      const out = new Uint8Array(n + 7).fill(0xee);
      readRange(file, at, out, 5, n);
      assert.deepEqual([...out.subarray(5, 5 + n)], [...bytes.subarray(at, at + n)], `bytes ${at}+${n}`);
      assert.deepEqual([...out.subarray(0, 5), ...out.subarray(5 + n)], [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee], 'nothing outside the range written');
    }
  }
});

test('BoxSource: any box of a tensor, the same as slicing it', () => {
  const shape = [6, 4, 5];
  const values = range(numelOf(shape));
  const base = new ViewSource(view(values, shape, [20, 5, 1]));
  for (const [off, size] of [
    [
      [0, 0, 0],
      [6, 4, 5],
    ],
    [
      [2, 0, 0],
      [3, 4, 5],
    ],
    [
      [1, 1, 2],
      [4, 2, 3],
    ],
    [
      [0, 3, 0],
      [6, 1, 5],
    ],
    [
      [5, 0, 4],
      [1, 4, 1],
    ],
  ] as const) {
    const want = naive(view(values, [...size], [20, 5, 1], off[0] * 20 + off[1] * 5 + off[2]), values);
    assert.deepEqual(read(new BoxSource(base, off, size)), want, `box [${off}]+[${size}]`);
  }
});

test('AssembledSource refuses pieces that leave a gap, overlap or disagree with the metadata', () => {
  const piece = (
    offsets: number[],
    sizes: number[],
    src = new ViewSource(view(range(numelOf(sizes)), sizes, sizes.length === 2 ? [sizes[1]!, 1] : [1])),
  ): Piece => ({ offsets, sizes, source: src, label: 'p' });
  const kind = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof CheckpointError, String(e));
      return e.kind;
    }
    return 'none';
  };
  assert.equal(
    kind(() => new AssembledSource(f32, [4, 2], [piece([0, 0], [2, 2])], 'gap')),
    'truncated',
  );
  assert.equal(
    kind(() => new AssembledSource(f32, [4, 2], [piece([0, 0], [3, 2]), piece([2, 0], [2, 2])], 'overlap')),
    'not-a-checkpoint',
  );
  assert.equal(
    kind(() => new AssembledSource(f32, [4, 2], [piece([0, 0], [2, 2]), piece([3, 0], [2, 2])], 'outside')),
    'not-a-checkpoint',
  );
  assert.equal(
    kind(() => new AssembledSource(f32, [4, 2], [piece([0, 0], [2, 2]), piece([2, 0], [2, 2], new ViewSource(view(range(4), [4], [1])))], 'shape')),
    'not-a-checkpoint',
  );
  // same element count but a hole and an overlap: found when that element is read
  const holey = new AssembledSource(f32, [2, 2], [piece([0, 0], [1, 2]), piece([0, 1], [2, 1])], 'hole');
  assert.equal(
    kind(() => read(holey)),
    'truncated',
  );
});
