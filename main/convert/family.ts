import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { openCheckpoint } from '../checkpoint/open-checkpoint.ts';
import { readTensorBytes } from '../checkpoint/tensor-bytes.ts';
import type { TensorAt } from '../checkpoint/tree.ts';
import { FileReader } from '../formats/random-access.ts';
import type { TorchTensor } from '../formats/torch-values.ts';

export interface RankComparison {
  /** every rank holds the same tensors, byte for byte */
  identical: boolean;
  /** tensor paths whose bytes (or dtype/shape) differ from rank 0's, or that a rank lacks */
  differing: string[];
  tensors: number;
}

const CHUNK = 16 << 20;

/**
 * Compares the ranks of a per-rank family tensor by tensor (CRC-32 of each tensor's bytes), so a
 * family is merged into one file only when its ranks really are copies. DDP ranks usually are;
 * BatchNorm running statistics, or sharded training, make them differ.
 */
export function compareRanks(files: string[]): RankComparison {
  const fingerprints = files.map((f) => {
    const c = openCheckpoint(f);
    try {
      return new Map(c.tensors.map((t) => [JSON.stringify(t.path), fingerprint(t)]));
    } finally {
      c.close();
    }
  });
  const [first, ...rest] = fingerprints;
  const differing = new Set<string>();
  for (const other of rest) {
    for (const [k, v] of first!) if (other.get(k) !== v) differing.add(k);
    for (const k of other.keys()) if (!first!.has(k)) differing.add(k);
  }
  return { identical: differing.size === 0, differing: [...differing].map((k) => (JSON.parse(k) as (string | number)[]).join('/')), tensors: first?.size ?? 0 };
}

let unique = 0;

function fingerprint(t: TensorAt): string {
  const x = t.tensor;
  // A tensor without a storage of its own (a DTensor wrapper, a meta tensor) cannot be compared
  // by bytes here: it never counts as equal, so such ranks are not merged as copies.
  if (!x.storage && x.numel > 0) return `unmatched-${unique++}`;
  return `${x.dtype.name}[${x.shape}]:${crcOf(x).toString(16)}`;
}

/** CRC-32 of a tensor's elements; contiguous tensors are read in chunks, never whole. */
function crcOf(t: TorchTensor): number {
  if (!t.storage || t.numel === 0) return 0;
  if (!t.isContiguous) return zlib.crc32(readTensorBytes(t)) >>> 0;
  const r = t.storage.locate();
  const span = t.storageSpan;
  if (!(r.reader instanceof FileReader)) return zlib.crc32(r.reader.read(r.offset + span.offset, span.length)) >>> 0;
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, span.length));
  let crc = 0;
  for (let done = 0; done < span.length;) {
    const n = fs.readSync(r.reader.descriptor, buf, 0, Math.min(buf.length, span.length - done), r.offset + span.offset + done);
    if (n === 0) break;
    crc = zlib.crc32(buf.subarray(0, n), crc);
    done += n;
  }
  return crc >>> 0;
}
