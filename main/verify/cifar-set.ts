/**
 * CIFAR-10 / CIFAR-100 "python version" batches (https://www.cs.toronto.edu/~kriz/cifar.html): a
 * pickled dict with `data`, a uint8 numpy array N×3072 (each row the red, green and blue 32×32
 * planes), and `labels` (CIFAR-10) or `fine_labels` (CIFAR-100). The originals were written by
 * Python 2's cPickle, so keys and the array's bytes are Python 2 `str`; torchvision reads them with
 * `pickle.load(f, encoding='latin1')`. Read here with the engine's pickle VM, which never runs
 * anything; numpy arrays are rebuilt from their recipe (`numpy.core.multiarray._reconstruct` plus
 * the BUILD state `(version, shape, dtype, fortran_order, data)`, or protocol 5's `_frombuffer`).
 * Class names come from `batches.meta` / `meta` beside the batch when present.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors.ts';
import { readWholeFile } from '../io/random-access.ts';
import { numpyDtypeOf } from '../formats/numpy/numpy-values.ts';
import { PickleInput } from '../formats/pickle/pickle-input.ts';
import { unpickle } from '../formats/pickle/unpickler.ts';
import { PyBytes, PyDict, PyList, PyObject, PyTuple, type PyValue } from '../formats/values/python-values.ts';
import type { RawImage, TestSet } from './test-set.ts';

export interface NdArray {
  descr: string;
  shape: number[];
  data: Uint8Array;
}

const ITEM: Record<string, number> = { u1: 1, i1: 1, b1: 1, u2: 2, i2: 2, f2: 2, u4: 4, i4: 4, f4: 4, u8: 8, i8: 8, f8: 8 };

function load(file: string): PyValue {
  const bytes = readWholeFile(file);
  return unpickle(PickleInput.fromBytes(bytes, file), {}, 'CIFAR batch').value;
}

/** A dict entry under a str key or (Python 3 `encoding='bytes'` style) a bytes key. */
export function entry(d: PyDict, key: string): PyValue | undefined {
  return d.get(key) ?? d.get(new PyBytes(new TextEncoder().encode(key)));
}

/**
 * Bytes of a Python 2 `str` the VM decoded as text (UTF-8 when valid, else latin-1). Whichever
 * way gives the expected length is the original; a UTF-8 decode also drops a leading BOM.
 */
function py2Bytes(s: string, expected: number): Uint8Array | null {
  if (s.length === expected && !/[^\x00-\xff]/.test(s)) return Buffer.from(s, 'latin1');
  const utf = Buffer.from(s, 'utf8');
  if (utf.length === expected) return utf;
  if (utf.length === expected - 3) return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf]);
  return null;
}

/** A numpy array from its pickle recipe. */
export function ndarray(v: PyValue | undefined, what: string): NdArray | null {
  if (!(v instanceof PyObject)) return null;
  let descr: string | undefined;
  let shape: number[] | undefined;
  let raw: PyValue | undefined;
  if (/^numpy\.(_?core)\.multiarray\._reconstruct$/.test(v.className) && v.state instanceof PyTuple) {
    const [, sh, dt, fortran, data] = v.state.items;
    if (fortran === true) fail('unsupported', `${what}: Fortran-ordered array; save it C-ordered`);
    descr = numpyDtypeOf(dt ?? null)?.descr;
    shape = sh instanceof PyTuple ? sh.items.map(Number) : undefined;
    raw = data;
  } else if (/^numpy\.(_?core)\.numeric\._frombuffer$/.test(v.className)) {
    const [buf, dt, sh, order] = v.args;
    if (order === 'F') fail('unsupported', `${what}: Fortran-ordered array; save it C-ordered`);
    descr = numpyDtypeOf(dt ?? null)?.descr;
    shape = sh instanceof PyTuple ? sh.items.map(Number) : undefined;
    raw = buf;
  } else return null;
  if (!descr || !shape) fail('bad-pickle', `${what}: a numpy array without a readable dtype or shape`);
  if (/^>/.test(descr) && !/1$/.test(descr)) fail('unsupported', `${what}: big-endian numpy array (${descr})`);
  const code = descr.replace(/^[<>|=]/, '');
  const size = ITEM[code];
  if (!size) fail('unsupported', `${what}: numpy dtype ${descr} is not one verify reads`);
  const nbytes = shape.reduce((a, b) => a * b, 1) * size;
  const data = raw instanceof PyBytes ? raw.data : typeof raw === 'string' ? py2Bytes(raw, nbytes) : null;
  if (!data || data.length !== nbytes)
    fail('bad-pickle', `${what}: numpy array data is ${data?.length ?? 'missing'} bytes, expected ${nbytes} for [${shape.join(', ')}] ${descr}`);
  return { descr: code, shape, data };
}

function intList(v: PyValue | undefined, what: string): Int32Array | null {
  if (v instanceof PyList || v instanceof PyTuple)
    return Int32Array.from(
      v.items.map((x) => (typeof x === 'number' ? x : typeof x === 'bigint' ? Number(x) : fail('bad-pickle', `${what}: a label is not an integer`))),
    );
  const a = ndarray(v, what);
  if (!a) return null;
  const dv = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const size = ITEM[a.descr]!;
  return Int32Array.from({ length: a.data.length / size }, (_, i) =>
    size === 1 ? a.data[i]! : size === 2 ? dv.getInt16(i * 2, true) : size === 4 ? dv.getInt32(i * 4, true) : Number(dv.getBigInt64(i * 8, true)),
  );
}

function batchFile(p: string): string {
  if (!fs.statSync(p).isDirectory()) return p;
  for (const name of ['test_batch', 'test']) if (fs.existsSync(path.join(p, name))) return path.join(p, name);
  return fail('usage', `${p}: no CIFAR test batch here (test_batch for CIFAR-10, test for CIFAR-100)`, p);
}

function classNames(file: string, fine: boolean): string[] | null {
  const dir = path.dirname(file);
  for (const [name, key] of [
    ['batches.meta', 'label_names'],
    ['meta', fine ? 'fine_label_names' : 'label_names'],
  ] as const) {
    const f = path.join(dir, name);
    if (!fs.existsSync(f) || f === file) continue;
    try {
      const m = load(f);
      const list = m instanceof PyDict ? entry(m, key) : undefined;
      if (list instanceof PyList)
        return list.items.map((x) => (typeof x === 'string' ? x : x instanceof PyBytes ? Buffer.from(x.data).toString('latin1') : String(x)));
    } catch {
      return null;
    }
  }
  return null;
}

export function openCifarSet(p: string): TestSet {
  const file = batchFile(p);
  const root = load(file);
  if (!(root instanceof PyDict)) fail('usage', `${file}: not a CIFAR batch (the pickle holds no dict)`, file);
  const data = ndarray(entry(root, 'data'), `${file}: data`);
  if (!data) fail('usage', `${file}: not a CIFAR batch (no numpy 'data' array)`, file);
  if (data.descr !== 'u1') fail('usage', `${file}: data is ${data.descr}, CIFAR images are uint8`, file);
  const fine = entry(root, 'fine_labels') !== undefined;
  const labels = intList(entry(root, fine ? 'fine_labels' : 'labels'), `${file}: labels`);
  if (!labels) fail('usage', `${file}: not a CIFAR batch (no labels or fine_labels)`, file);
  const n = data.shape[0]!;
  if (labels.length !== n) fail('usage', `${file}: ${n} images but ${labels.length} labels`, file);
  let geometry: Omit<RawImage, 'data'>;
  if (data.shape.length === 2 && data.shape[1] === 3072) geometry = { layout: 'CHW', channels: 3, height: 32, width: 32 };
  else if (data.shape.length === 4 && data.shape[3] === 3) geometry = { layout: 'HWC', channels: 3, height: data.shape[1]!, width: data.shape[2]! };
  else if (data.shape.length === 4) geometry = { layout: 'CHW', channels: data.shape[1]!, height: data.shape[2]!, width: data.shape[3]! };
  else return fail('usage', `${file}: data is [${data.shape.join(', ')}]; CIFAR rows are 3072 values (3×32×32)`, file);
  const per = geometry.channels * geometry.height * geometry.width;
  return {
    format: 'cifar',
    path: file,
    count: n,
    labels,
    classNames: classNames(file, fine),
    notes: [`${path.basename(file)}: ${fine ? 'CIFAR-100 (fine labels)' : 'CIFAR-10'} batch, data uint8 [${data.shape.join(', ')}]`],
    sample(i: number): RawImage {
      return { ...geometry, data: data.data.subarray(i * per, (i + 1) * per) };
    },
  };
}
