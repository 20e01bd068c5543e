import type { ChangedTensor } from '../../shared/diff.ts';
import { readTensorBytes } from '../checkpoint/tensor-bytes.ts';
import * as fs from 'node:fs';
import { fail } from '../errors.ts';
import { FileReader, STREAM_CHUNK } from '../io/random-access.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import { toFloat64 } from '../verify/tensor-values.ts';

/**
 * Bytes read per tensor at a time: a multiple of every element size. 1 MiB read into one reused
 * buffer per side stays in the CPU cache while it is compared (see STREAM_CHUNK); a fresh 4 MiB
 * buffer per read measured 2.3 s for 2 GiB, against 1.1 s for `cat` of the same file.
 */
const CHUNK = STREAM_CHUNK;
const NUMERIC = new Set(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'uint64', 'int32', 'uint32', 'int16', 'uint16', 'int8', 'uint8']);

/**
 * The tensor's row-major bytes, a chunk at a time. A contiguous view is read straight from its
 * storage's byte range, one chunk after another, so two large tensors are never both in memory;
 * a strided view (rare in checkpoints) is gathered whole first.
 */
export function* tensorChunks(t: TorchTensor, elementsPerChunk = CHUNK / t.dtype.size, scratch?: Buffer): Generator<Uint8Array> {
  if (!t.storage) fail('unsupported', `tensor of kind ${t.kind} has no storage to read`);
  const es = t.dtype.size;
  const total = t.numel * es;
  if (total === 0) return;
  const step = elementsPerChunk * es;
  if (!t.isContiguous) {
    const all = readTensorBytes(t);
    for (let at = 0; at < total; at += step) yield all.subarray(at, Math.min(total, at + step));
    return;
  }
  const range = t.storage.locate();
  const span = t.storageSpan;
  if (span.offset + total > range.length)
    fail('truncated', `${range.reader.name}: tensor view reaches past its storage (${range.length} bytes)`, range.reader.name);
  const start = range.offset + span.offset;
  if (scratch && scratch.length >= step && range.reader instanceof FileReader) {
    // straight into the caller's buffer: each chunk is valid until the next one is asked for
    const fd = range.reader.descriptor;
    for (let at = 0; at < total; at += step) {
      const len = Math.min(step, total - at);
      let done = 0;
      while (done < len) {
        const n = fs.readSync(fd, scratch, done, len - done, start + at + done);
        if (n === 0) fail('truncated', `${range.reader.name}: file ended inside a tensor`, range.reader.name);
        done += n;
      }
      yield scratch.subarray(0, len);
    }
    return;
  }
  for (let at = 0; at < total; at += step) yield range.reader.read(start + at, Math.min(step, total - at));
}

/** Two read buffers, one per side, reused for every tensor of a diff. */
export interface Scratch {
  a: Buffer;
  b: Buffer;
}

export function newScratch(): Scratch {
  return { a: Buffer.allocUnsafeSlow(CHUNK), b: Buffer.allocUnsafeSlow(CHUNK) };
}

/** Equal dtype, shape and bytes: compared chunk by chunk, stopping at the first difference. */
export function sameBytes(a: TorchTensor, b: TorchTensor, scratch: Scratch = newScratch()): boolean {
  if (a.dtype.name !== b.dtype.name || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  const ib = tensorChunks(b, CHUNK / b.dtype.size, scratch.b);
  for (const ca of tensorChunks(a, CHUNK / a.dtype.size, scratch.a)) {
    const cb = ib.next().value as Uint8Array;
    if (!Buffer.from(ca.buffer, ca.byteOffset, ca.byteLength).equals(Buffer.from(cb.buffer, cb.byteOffset, cb.byteLength))) return false;
  }
  return true;
}

/**
 * How two tensors under one key differ. Numbers of one shape are compared element by element,
 * streaming both in step: max |b−a|, max |b−a|/|a| (over a ≠ 0), mean |b−a|, the cosine of the
 * two as vectors, and NaN/Inf that appear in b where a is finite (left out of the other figures).
 */
export function describeChange(key: string, a: TorchTensor, b: TorchTensor, scratch: Scratch = newScratch()): Omit<ChangedTensor, 'index'> {
  const base = { key, dtypeA: a.dtype.name, dtypeB: b.dtype.name, shapeA: [...a.shape], shapeB: [...b.shape] };
  const none = { maxAbsDiff: null, maxRelDiff: null, meanAbsDiff: null, cosine: null, nanAppeared: 0, infAppeared: 0, differing: 0 };
  const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  const dtypeChanged = a.dtype.name !== b.dtype.name;
  if (!sameShape) return { ...base, reason: 'shape', ...none };
  if (!NUMERIC.has(a.dtype.name) || !NUMERIC.has(b.dtype.name)) return { ...base, reason: dtypeChanged ? 'dtype' : 'values', ...none, differing: a.numel };
  const per = Math.min(CHUNK / a.dtype.size, CHUNK / b.dtype.size);
  const ib = tensorChunks(b, per, scratch.b);
  let maxAbs = 0;
  let maxRel = 0;
  let sumAbs = 0;
  let dot = 0;
  let aa = 0;
  let bb = 0;
  let nan = 0;
  let inf = 0;
  let differing = 0;
  let counted = 0;
  for (const ca of tensorChunks(a, per, scratch.a)) {
    const va = toFloat64(ca, a.dtype.name);
    const vb = toFloat64(ib.next().value as Uint8Array, b.dtype.name);
    for (let i = 0; i < va.length; i++) {
      const x = va[i]!;
      const y = vb[i]!;
      if (x === y || (Number.isNaN(x) && Number.isNaN(y))) {
        if (!Number.isNaN(x)) {
          dot += x * y;
          aa += x * x;
          bb += y * y;
          counted++;
        }
        continue;
      }
      differing++;
      if (Number.isFinite(x) && !Number.isFinite(y)) {
        if (Number.isNaN(y)) nan++;
        else inf++;
        continue;
      }
      const d = Math.abs(y - x);
      if (d > maxAbs) maxAbs = d;
      if (x !== 0 && d / Math.abs(x) > maxRel) maxRel = d / Math.abs(x);
      sumAbs += d;
      dot += x * y;
      aa += x * x;
      bb += y * y;
      counted++;
    }
  }
  const cosine = aa === 0 && bb === 0 ? 1 : aa === 0 || bb === 0 ? 0 : dot / Math.sqrt(aa * bb);
  return {
    ...base,
    reason: dtypeChanged ? (differing ? 'dtype+values' : 'dtype') : 'values',
    maxAbsDiff: maxAbs,
    maxRelDiff: maxRel,
    meanAbsDiff: counted ? sumAbs / counted : 0,
    cosine,
    nanAppeared: nan,
    infAppeared: inf,
    differing,
  };
}
