/**
 * MNIST-style idx files (http://yann.lecun.com/exdb/mnist/, also Fashion-MNIST, KMNIST, EMNIST):
 * two zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double),
 * the number of dimensions, each dimension as a big-endian u32, then the data, big-endian, row-major.
 * Images are `*-images-idx3-ubyte` (N×H×W) with labels in the matching `*-labels-idx1-ubyte`;
 * either may be gzipped (`.gz`, as distributed). Given a folder, the test split (`t10k-*`) is used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fail } from '../errors.ts';
import { readWholeFile } from '../io/random-access.ts';
import type { RawImage, TestSet } from './test-set.ts';

const TYPES: Record<number, [string, number]> = {
  0x08: ['ubyte', 1],
  0x09: ['byte', 1],
  0x0b: ['short', 2],
  0x0c: ['int', 4],
  0x0d: ['float', 4],
  0x0e: ['double', 8],
};
const IMAGES = /images[-_.]idx[34]-ubyte(\.gz)?$/i;

export interface IdxArray {
  type: string;
  dims: number[];
  /** the data, still big-endian */
  data: Uint8Array;
}

export function readIdx(file: string): IdxArray {
  let bytes: Uint8Array = readWholeFile(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes, { maxOutputLength: 2 ** 31 - 1 });
    } catch (e) {
      fail('truncated', `${file}: the gzip data is damaged (${(e as Error).message}); download it again`, file);
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || !TYPES[bytes[2]!] || bytes[3]! < 1)
    fail('not-a-checkpoint', `${file}: not an idx file (it must start with 00 00, a type byte and a dimension count)`, file);
  const [type, size] = TYPES[bytes[2]!]!;
  const nd = bytes[3]!;
  if (bytes.length < 4 + 4 * nd) fail('truncated', `${file}: the idx header ends early`, file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: nd }, (_, i) => dv.getUint32(4 + 4 * i, false));
  const n = dims.reduce((a, b) => a * b, 1) * size;
  const start = 4 + 4 * nd;
  if (bytes.length < start + n) fail('truncated', `${file}: holds ${bytes.length - start} data bytes, its header says ${n}; the file is truncated`, file);
  return { type, dims, data: bytes.subarray(start, start + n) };
}

/** The elements as numbers, whatever the idx type (data is big-endian). */
export function idxValues(a: IdxArray): Float64Array {
  const dv = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const size = Object.values(TYPES).find(([t]) => t === a.type)![1];
  const out = new Float64Array(a.data.length / size);
  for (let i = 0; i < out.length; i++) {
    const o = i * size;
    out[i] =
      a.type === 'ubyte'
        ? a.data[o]!
        : a.type === 'byte'
          ? dv.getInt8(o)
          : a.type === 'short'
            ? dv.getInt16(o, false)
            : a.type === 'int'
              ? dv.getInt32(o, false)
              : a.type === 'float'
                ? dv.getFloat32(o, false)
                : dv.getFloat64(o, false);
  }
  return out;
}

/** The images file of a folder's test split (`t10k-*`, `*test*`), or its only one. */
export function findIdxImages(dir: string, names = fs.readdirSync(dir)): string | null {
  const imgs = names.filter((n) => IMAGES.test(n)).sort();
  const pick = imgs.find((n) => /^t10k/i.test(n)) ?? imgs.find((n) => /test/i.test(n)) ?? (imgs.length === 1 ? imgs[0] : undefined);
  return pick ? path.join(dir, pick) : null;
}

function labelsFor(images: string): string {
  const dir = path.dirname(images);
  const base = path
    .basename(images)
    .replace(/images/i, 'labels')
    .replace(/idx[34]/i, 'idx1');
  for (const name of [base, base.replace(/\.gz$/i, ''), `${base.replace(/\.gz$/i, '')}.gz`])
    if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  return fail('usage', `${images}: no labels file beside it (expected ${base})`, images);
}

export function openIdxSet(p: string): TestSet {
  const images = fs.statSync(p).isDirectory() ? findIdxImages(p) : p;
  if (!images) fail('usage', `${p}: no *-images-idx3-ubyte file here`, p);
  const x = readIdx(images);
  const y = readIdx(labelsFor(images));
  if (x.dims.length !== 3 && x.dims.length !== 4) fail('usage', `${images}: images are [${x.dims.join(', ')}]; expected N×H×W (idx3) or N×H×W×C`, images);
  if (y.dims.length !== 1 || y.dims[0] !== x.dims[0]) fail('usage', `${images}: ${x.dims[0]} images but ${y.dims.join('×')} labels`, images);
  if (!['ubyte', 'byte', 'short', 'int'].includes(y.type)) fail('usage', `${images}: labels are ${y.type}; expected integers`, images);
  const labels = Int32Array.from(idxValues(y));
  const [n, h, w, c = 1] = x.dims as [number, number, number, number?];
  const per = h * w * c;
  const values: Uint8Array | Float32Array = x.type === 'ubyte' ? x.data : Float32Array.from(idxValues(x));
  return {
    format: 'idx',
    path: images,
    count: n,
    labels,
    classNames: null,
    notes: [`${path.basename(images)}: ${x.type} [${x.dims.join(', ')}]`],
    sample(i: number): RawImage {
      return { data: values.subarray(i * per, (i + 1) * per), channels: c, height: h, width: w, layout: 'HWC' };
    },
  };
}
