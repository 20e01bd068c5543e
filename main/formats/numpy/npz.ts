/**
 * NumPy `.npz`: a zip archive of `.npy` members, written by `np.savez` (stored) or
 * `np.savez_compressed` (deflate) (numpy/lib/npyio.py `_savez`). A member `w.npy` is the
 * array `w`.
 *
 * Opening reads the zip directory and each member's npy header only. A stored member's bytes
 * are a plain range of the file. A deflated member is inflated only when its bytes are asked
 * for, into memory (at most 1 GiB); to read its header at open, just enough of the compressed
 * stream is inflated to cover the header.
 */
import * as zlib from 'node:zlib';
import { CheckpointError, fail } from '../../errors.ts';
import { BufferReader, FileReader, SliceReader, type RandomAccessReader } from '../../io/random-access.ts';
import { ZipArchive, type ZipEntry } from '../zip/zip.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { PyDict } from '../values/python-values.ts';
import type { ByteRange, TorchTensor } from '../values/torch-values.ts';
import { MAX_NPY_HEADER, NPY_MAGIC, npyStrides, readNpyHeader, type NpyHeader } from './npy.ts';
import { makeStorage } from '../safetensors/safetensors.ts';
import { headerTensor } from '../values/header-values.ts';

/** The most a deflated member may inflate to. */
export const MAX_NPZ_MEMBER = 1 << 30;

/** True when every file in the archive is a `.npy` member (what `np.savez` writes). */
export function isNpzArchive(archive: ZipArchive): boolean {
  const files = archive.entries.filter((e) => !e.name.endsWith('/'));
  return files.length > 0 && files.every((e) => e.name.endsWith('.npy'));
}

/** Reads an `.npz` from its file, or from its zip archive when the caller has parsed it already. */
export function readNpz(source: RandomAccessReader | ZipArchive): FormatReading {
  const archive = source instanceof ZipArchive ? source : ZipArchive.open(source);
  const reader = archive.reader;
  const root = new PyDict(true);
  const notes: string[] = [];
  const methods = new Set<string>();
  const skipped: string[] = [];
  for (const entry of archive.entries) {
    if (entry.name.endsWith('/')) continue;
    if (!entry.name.endsWith('.npy')) {
      notes.push(`member ${entry.name} is not a .npy array and is skipped`);
      continue;
    }
    const key = entry.name.slice(0, -4);
    const label = `${reader.name}:${entry.name}`;
    let member: { header: NpyHeader; locate: () => ByteRange };
    try {
      member = openMember(archive, entry, label);
    } catch (e) {
      // a member torch has no dtype for (a `|S3` version string, scipy.sparse's `format`, float128,
      // a structured or object array) is skipped with its reason, as a re-shard skips what it cannot hold
      if (e instanceof CheckpointError && e.kind === 'unsupported' && e.message.startsWith(`${label}: `)) {
        skipped.push(`${entry.name} (${e.message.slice(label.length + 2)})`);
        continue;
      }
      // errors about the member name it in the message; the file they concern is the archive
      if (e instanceof CheckpointError && e.file === label) throw new CheckpointError(e.kind, e.message, reader.name);
      throw e;
    }
    const { header, locate } = member;
    methods.add(entry.method === 0 ? 'stored' : 'deflate');
    const storage = makeStorage(key, header.dtype, header.nbytes, locate);
    root.set(key, headerTensor(header.dtype, header.shape, npyStrides(header.shape, header.fortranOrder), storage));
  }
  if (skipped.length && root.size === 0)
    fail('unsupported', `${reader.name}: none of its ${skipped.length} arrays has a torch dtype: ${skipped.join('; ')}`, reader.name);
  for (const s of skipped) notes.push(`skipped member ${s}`);
  return {
    format: 'npz',
    records: {
      arrays: String(root.size),
      ...(skipped.length ? { skipped: String(skipped.length) } : {}),
      compression: [...methods].sort().join(', ') || 'none',
    },
    root,
    globals: [],
    notes,
    close: () => reader.close(),
  };
}

function openMember(archive: ZipArchive, entry: ZipEntry, label: string): { header: NpyHeader; locate: () => ByteRange } {
  const reader = archive.reader;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.uncompressedSize)
      fail('corrupt-zip', `${label}: stored member sizes disagree (${entry.compressedSize} vs ${entry.uncompressedSize})`, reader.name);
    const range = archive.dataRange(entry);
    const header = readNpyHeader(new SliceReader(reader, range.offset, range.length, label));
    const offset = range.offset + header.dataOffset;
    const length = header.nbytes;
    return { header, locate: () => ({ reader, offset, length }) };
  }
  if (entry.method === 8) {
    const head = inflateHead(archive, entry, label);
    const header = readNpyHeader(new BufferReader(head, label), 0, entry.uncompressedSize);
    let cache: WeakRef<Uint8Array> | undefined;
    const locate = (): ByteRange => {
      let bytes = cache?.deref();
      if (!bytes) {
        if (entry.uncompressedSize > MAX_NPZ_MEMBER)
          fail(
            'too-large',
            `${label}: compressed member inflates to ${entry.uncompressedSize} bytes, more than the ${MAX_NPZ_MEMBER} this reader holds in memory; re-save with np.savez (uncompressed)`,
            reader.name,
          );
        bytes = archive.readEntry(entry, MAX_NPZ_MEMBER);
        cache = new WeakRef(bytes);
      }
      return { reader: new BufferReader(bytes, label), offset: header.dataOffset, length: header.nbytes };
    };
    return { header, locate };
  }
  fail('unsupported', `${label}: zip compression method ${entry.method} is not supported (np.savez writes stored or deflate)`, reader.name);
}

/**
 * Inflates a prefix of a deflated member, growing it until the npy header is covered. Output
 * per step is bounded by the compressed bytes added (64 KiB at a time).
 */
function inflateHead(archive: ZipArchive, entry: ZipEntry, label: string): Uint8Array {
  const range = archive.dataRange(entry);
  let take = Math.min(range.length, 4096);
  for (;;) {
    const raw = archive.reader.read(range.offset, take);
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch {
      fail('corrupt-zip', `${label}: the compressed data is damaged and does not inflate`, archive.reader.name);
    }
    const need = headerEnd(out);
    if ((need !== null && out.length >= need) || take === range.length) return out;
    take = Math.min(range.length, take + 65536);
  }
}

/** Bytes needed to cover the npy header, from its first 12 bytes; 0 when it is not npy at all. */
function headerEnd(b: Uint8Array): number | null {
  if (b.length < 8) return null;
  if (!NPY_MAGIC.every((x, i) => b[i] === x)) return 0;
  if (b[6] === 1) return b.length < 10 ? null : 10 + (b[8]! | (b[9]! << 8));
  if (b.length < 12) return null;
  const n = 12 + new DataView(b.buffer, b.byteOffset, 12).getUint32(8, true);
  return n > MAX_NPY_HEADER + 12 ? 0 : n;
}

export interface NpzArray {
  /** torch dtype name, e.g. `float32` */
  dtype: string;
  shape: number[];
  /** the elements in row-major (C) order, little-endian; Fortran-order arrays are reordered */
  data: Uint8Array;
}

/** Reads every array of a small `.npz` into memory (test sets `x`/`y` and the like). */
export function readNpzArrays(path: string): Map<string, NpzArray> {
  const reader = new FileReader(path);
  try {
    const reading = readNpz(reader);
    const out = new Map<string, NpzArray>();
    for (const [k, v] of (reading.root as PyDict).entries) {
      const t = v as TorchTensor;
      const r = t.storage!.locate();
      const bytes = r.reader.read(r.offset, r.length);
      let data: Uint8Array = new Uint8Array(bytes.length);
      data.set(bytes);
      if (!t.isContiguous) data = toRowMajor(data, t.shape, t.stride, t.dtype.size);
      out.set(k as string, { dtype: t.dtype.name, shape: t.shape.slice(), data });
    }
    return out;
  } finally {
    reader.close();
  }
}

/** Copies a dense array laid out with `stride` (in elements) into row-major order. */
function toRowMajor(data: Uint8Array, shape: number[], stride: number[], size: number): Uint8Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(numel * size);
  const idx = new Array<number>(shape.length).fill(0);
  for (let c = 0; c < numel; c++) {
    let f = 0;
    for (let i = 0; i < shape.length; i++) f += idx[i]! * stride[i]!;
    out.set(data.subarray(f * size, f * size + size), c * size);
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i]! < shape[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}
