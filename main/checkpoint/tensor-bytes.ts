import { fail } from '../errors.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';

/**
 * The tensor's elements in row-major order as raw little-endian bytes, the same bytes
 * `t.contiguous().numpy().tobytes()` gives. Reads only the span of the storage the view covers.
 */
export function readTensorBytes(t: TorchTensor): Uint8Array {
  if (!t.storage) fail('unsupported', `tensor of kind ${t.kind} has no storage to read`);
  const es = t.dtype.size;
  if (t.numel === 0) return new Uint8Array(0);
  const range = t.storage.locate();
  const span = t.storageSpan;
  if (span.offset + span.length > range.length)
    fail('truncated', `${range.reader.name}: tensor view reaches past its storage (${range.length} bytes)`, range.reader.name);
  const src = range.reader.read(range.offset + span.offset, span.length);
  if (t.isContiguous) return src;
  const out = new Uint8Array(t.numel * es);
  const nd = t.shape.length;
  const idx = new Array<number>(nd).fill(0);
  let o = 0;
  let srcEl = 0; // element offset relative to storageOffset
  for (let n = 0; n < t.numel; n++) {
    const at = srcEl * es;
    for (let b = 0; b < es; b++) out[o++] = src[at + b]!;
    // advance the multi-index, innermost first
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      srcEl += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      srcEl -= t.stride[d]! * t.shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
