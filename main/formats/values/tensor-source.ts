import * as fs from 'node:fs';
import { crc32 } from '../../io/crc32.ts';
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import { FileReader, STREAM_CHUNK, type RandomAccessReader } from '../../io/random-access.ts';
import { contiguousStrides, type TorchTensor } from './torch-values.ts';

/**
 * A tensor's elements in row-major order, produced on demand in any range, without holding the
 * tensor in memory. Three kinds compose every re-shard: a strided view of a storage on disk
 * (`ViewSource`), a global tensor assembled from boxes of other sources (`AssembledSource`: DCP
 * chunks, DTensor/ShardedTensor shards) and a box cut out of another source (`BoxSource`: a DCP
 * chunk to write, or a chunk read back from a written file to verify it).
 */
export interface TensorSource {
  readonly dtype: DTypeInfo;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Writes the row-major bytes of elements [first, first + count) into `out` at `outAt`. */
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void;
  describe(): string;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A window [start, start + size) of an open file, read with positioned reads on its descriptor. */
export class FileWindow implements RandomAccessReader {
  constructor(
    readonly name: string,
    readonly fd: number,
    readonly start: number,
    readonly size: number,
  ) {}
  read(offset: number, length: number): Uint8Array {
    const buf = Buffer.allocUnsafe(length);
    readRange(this, offset, buf, 0, length);
    return buf;
  }
  close(): void {}
}

/**
 * Reads `length` bytes at `offset` of a reader straight into `out`: positioned reads on the file
 * descriptor when the reader is a file or a window of one, so nothing is allocated per read.
 */
export function readRange(reader: RandomAccessReader, offset: number, out: Uint8Array, outAt: number, length: number): void {
  if (length === 0) return;
  if (offset < 0 || offset + length > reader.size)
    fail('truncated', `${reader.name}: needs bytes up to ${offset + length} but has ${reader.size}; the file is truncated`, reader.name);
  if (reader instanceof SourceReader) {
    const es = reader.source.dtype.size;
    if (offset % es === 0 && length % es === 0) {
      // whole elements of an assembled or cut-out tensor: straight into `out`, no buffer per read
      reader.source.readElements(offset / es, length / es, out, outAt);
      return;
    }
  }
  const fd = reader instanceof FileReader ? reader.descriptor : reader instanceof FileWindow ? reader.fd : -1;
  if (fd < 0) {
    out.set(reader.read(offset, length), outAt);
    return;
  }
  const base = reader instanceof FileWindow ? reader.start : 0;
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, out, outAt + got, length - got, base + offset + got);
    if (n === 0) fail('truncated', `${reader.name}: file ended at byte ${base + offset + got}; was it changed or truncated while being read?`, reader.name);
    got += n;
  }
}

/** Storage spans up to this size are read once and gathered in memory when the view is not row-major. */
const GATHER_SPAN = 64 << 20;
/** At most this many bytes of gathered spans are held at once, over all views (least recently used go first). */
const GATHER_BUDGET = 128 << 20;
const gathered: ViewSource[] = [];

function holdSpan(v: ViewSource, bytes: number): void {
  const i = gathered.indexOf(v);
  if (i >= 0) gathered.splice(i, 1);
  gathered.push(v);
  let total = gathered.reduce((a, g) => a + g.spanBytes, 0) + bytes;
  while (total > GATHER_BUDGET && gathered.length > 1) {
    const old = gathered.shift()!;
    total -= old.spanBytes;
    old.release();
  }
}

/** A (possibly strided) view of a storage on disk: a `TorchTensor` as a checkpoint holds it. */
export class ViewSource implements TensorSource {
  readonly dtype: DTypeInfo;
  readonly shape: readonly number[];
  readonly numel: number;
  /** dims with size-1 dims dropped and row-major-adjacent dims merged */
  private readonly dims: { size: number; stride: number }[];
  /** the elements are one row-major run of the storage */
  private readonly rowMajor: boolean;
  private range: { reader: RandomAccessReader; offset: number; length: number } | null = null;
  private span: Uint8Array | null = null;
  constructor(private readonly tensor: TorchTensor) {
    if (!tensor.storage) fail('unsupported', `a ${tensor.kind} tensor has no storage to read`);
    this.dtype = tensor.dtype;
    this.shape = tensor.shape;
    this.numel = tensor.numel;
    const dims: { size: number; stride: number }[] = [];
    tensor.shape.forEach((size, i) => {
      if (size !== 1) dims.push({ size, stride: tensor.stride[i]! });
    });
    for (let i = dims.length - 1; i > 0; i--) {
      const a = dims[i - 1]!;
      const b = dims[i]!;
      if (a.stride === b.stride * b.size) {
        dims.splice(i - 1, 2, { size: a.size * b.size, stride: b.stride });
      }
    }
    this.dims = dims;
    this.rowMajor = dims.length === 0 || (dims.length === 1 && dims[0]!.stride === 1);
  }
  describe(): string {
    return this.tensor.describe();
  }
  private located(): { reader: RandomAccessReader; offset: number; length: number } {
    if (!this.range) {
      this.range = this.tensor.storage!.locate();
      const span = this.tensor.storageSpan;
      if (span.offset + span.length > this.range.length)
        fail('truncated', `${this.range.reader.name}: tensor view reaches past its storage (${this.range.length} bytes)`, this.range.reader.name);
    }
    return this.range;
  }
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void {
    if (count === 0) return;
    const es = this.dtype.size;
    const r = this.located();
    const base = this.tensor.storageOffset;
    const dims = this.dims;
    if (this.rowMajor) {
      readRange(r.reader, r.offset + (base + first) * es, out, outAt, count * es);
      return;
    }
    // Walk the view: runs along the innermost dim when it is unit-stride, single elements otherwise.
    const nd = dims.length;
    const idx = new Array<number>(nd).fill(0);
    let rem = first;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d] = rem % dims[d]!.size;
      rem = Math.floor(rem / dims[d]!.size);
    }
    const inner = dims[nd - 1]!;
    const gather = inner.stride !== 1 && this.tensor.storageSpan.length <= GATHER_SPAN;
    if (gather && !this.span) {
      const s = this.tensor.storageSpan;
      holdSpan(this, s.length);
      this.span = Buffer.allocUnsafe(s.length);
      readRange(r.reader, r.offset + s.offset, this.span, 0, s.length);
    }
    let at = outAt;
    let left = count;
    while (left > 0) {
      let el = base;
      for (let d = 0; d < nd; d++) el += idx[d]! * dims[d]!.stride;
      const run = inner.stride === 1 ? Math.min(inner.size - idx[nd - 1]!, left) : 1;
      if (this.span) out.set(this.span.subarray((el - base) * es, (el - base + run) * es), at);
      else readRange(r.reader, r.offset + el * es, out, at, run * es);
      at += run * es;
      left -= run;
      idx[nd - 1]! += run;
      for (let d = nd - 1; d > 0 && idx[d]! >= dims[d]!.size; d--) {
        idx[d] = 0;
        idx[d - 1]!++;
      }
    }
  }
  /**
   * Where the view's bytes lie as one row-major run in a file opened by path (a contiguous
   * tensor of a checkpoint file), so another thread can read them; null for any other view.
   */
  fileRange(): { file: string; offset: number; length: number } | null {
    if (!this.rowMajor) return null;
    const r = this.located();
    if (!(r.reader instanceof FileReader)) return null;
    const es = this.dtype.size;
    return { file: r.reader.name, offset: r.offset + this.tensor.storageOffset * es, length: this.numel * es };
  }
  get spanBytes(): number {
    return this.span?.length ?? 0;
  }
  /** Drops the gathered span. */
  release(): void {
    this.span = null;
    const i = gathered.indexOf(this);
    if (i >= 0) gathered.splice(i, 1);
  }
}

/** A box (`offsets`, `sizes`) of a global tensor whose bytes come from `source`. */
export interface Piece {
  offsets: number[];
  sizes: number[];
  source: TensorSource;
  /** where the piece came from, for messages and the layout view (e.g. `__1_0.distcp`, `rank1.pt`) */
  label: string;
}

/** Row-major strides in elements. */
/** The multi-index of row-major element `flat` of `shape`, written into `idx`. */
function unravel(flat: number, shape: readonly number[], idx: number[]): void {
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
}

/**
 * How far a row-major walk stays inside a box that starts at `off` with `size` inside `full`:
 * the box is contiguous across every trailing dim it covers fully. Returns the first dim `j` that
 * is not fully covered (dims after it are) and the element count `p` of the dims after `j`.
 */
function contiguity(off: readonly number[], size: readonly number[], full: readonly number[]): { j: number; p: number } {
  let j = full.length - 1;
  let p = 1;
  while (j > 0 && off[j] === 0 && size[j] === full[j]) {
    p *= full[j]!;
    j--;
  }
  return { j, p };
}

/**
 * A global tensor assembled from pieces that tile it (no gap, no overlap): a DCP tensor from its
 * chunks, a DTensor or ShardedTensor from its shards. Only the requested range is read.
 */
export class AssembledSource implements TensorSource {
  readonly numel: number;
  private readonly info: { j: number; p: number; lstride: number[]; end: number[] }[];
  private last = 0;
  /**
   * CRC-32 of each piece's bytes, accumulated while the tensor is read in order (a row-major walk
   * of the whole tensor visits every box's elements in the box's own row-major order), and how
   * many elements of the piece it covers; -1 once the piece was read out of order.
   */
  private readonly crcs: number[];
  private readonly crcDone: number[];
  constructor(
    readonly dtype: DTypeInfo,
    readonly shape: readonly number[],
    readonly pieces: Piece[],
    private readonly name: string,
  ) {
    this.numel = numelOf(shape);
    let covered = 0;
    for (const p of pieces) {
      const bad = p.offsets.length !== shape.length || p.sizes.length !== shape.length || p.offsets.some((o, d) => o < 0 || o + p.sizes[d]! > shape[d]!);
      if (bad) fail('not-a-checkpoint', `${name}: piece at [${p.offsets}] of size [${p.sizes}] (${p.label}) lies outside the tensor's shape [${shape}]`);
      if (String(p.source.shape) !== String(p.sizes))
        fail('not-a-checkpoint', `${name}: piece at [${p.offsets}] in ${p.label} holds shape [${p.source.shape}] but the metadata says [${p.sizes}]`);
      if (p.source.dtype.name !== dtype.name)
        fail('not-a-checkpoint', `${name}: piece in ${p.label} is ${p.source.dtype.name} but the tensor is ${dtype.name}`);
      covered += numelOf(p.sizes);
    }
    if (covered !== this.numel) {
      fail(
        covered < this.numel ? 'truncated' : 'not-a-checkpoint',
        `${name}: its ${pieces.length} pieces hold ${covered} of the tensor's ${this.numel} elements${covered < this.numel ? '; a rank or data file is missing' : ' (pieces overlap)'}`,
      );
    }
    this.info = pieces.map((p) => ({
      ...contiguity(p.offsets, p.sizes, shape),
      lstride: contiguousStrides(p.sizes),
      end: p.offsets.map((o, d) => o + p.sizes[d]!),
    }));
    this.crcs = pieces.map(() => 0);
    this.crcDone = pieces.map(() => 0);
  }
  /** The CRC-32 of piece `k`'s bytes as they were read for the last full in-order read, if there was one. */
  pieceCrc(k: number): number | undefined {
    return this.crcDone[k] === this.pieces[k]!.source.numel ? this.crcs[k]! >>> 0 : undefined;
  }
  describe(): string {
    return `${this.name} (${this.dtype.name} [${this.shape}], ${this.pieces.length} pieces)`;
  }
  private find(idx: number[]): number {
    const inside = (k: number): boolean => {
      const p = this.pieces[k]!;
      const e = this.info[k]!.end;
      for (let d = 0; d < idx.length; d++) if (idx[d]! < p.offsets[d]! || idx[d]! >= e[d]!) return false;
      return true;
    };
    if (inside(this.last)) return this.last;
    for (let k = 0; k < this.pieces.length; k++) {
      if (inside(k)) return (this.last = k);
    }
    return fail('truncated', `${this.name}: element [${idx}] is in none of its pieces; a rank or data file is missing`);
  }
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void {
    const nd = this.shape.length;
    const es = this.dtype.size;
    const idx = new Array<number>(nd);
    let flat = first;
    let at = outAt;
    const stop = first + count;
    while (flat < stop) {
      unravel(flat, this.shape, idx);
      const k = nd === 0 ? 0 : this.find(idx);
      const p = this.pieces[k]!;
      const { j, p: inner, lstride, end } = this.info[k]!;
      const run = Math.min(nd === 0 ? 1 : (end[j]! - idx[j]!) * inner - (flat % inner), stop - flat);
      let local = 0;
      for (let d = 0; d < nd; d++) local += (idx[d]! - p.offsets[d]!) * lstride[d]!;
      p.source.readElements(local, run, out, at);
      if (local === 0) {
        this.crcs[k] = 0;
        this.crcDone[k] = 0;
      }
      if (this.crcDone[k] === local) {
        this.crcs[k] = crc32(out.subarray(at, at + run * es), this.crcs[k]);
        this.crcDone[k]! += run;
      } else this.crcDone[k] = -1;
      at += run * es;
      flat += run;
    }
  }
}

/** The box (`offsets`, `sizes`) of another source, as a tensor of its own. */
export class BoxSource implements TensorSource {
  readonly numel: number;
  readonly shape: readonly number[];
  private readonly bstride: number[];
  private readonly j: number;
  private readonly p: number;
  constructor(
    private readonly base: TensorSource,
    private readonly offsets: readonly number[],
    sizes: readonly number[],
  ) {
    this.shape = [...sizes];
    this.numel = numelOf(sizes);
    if (offsets.length !== base.shape.length || sizes.length !== base.shape.length || offsets.some((o, d) => o < 0 || o + sizes[d]! > base.shape[d]!)) {
      fail('internal', `box [${offsets}]+[${sizes}] lies outside [${base.shape}]`);
    }
    this.bstride = contiguousStrides(base.shape);
    ({ j: this.j, p: this.p } = contiguity(offsets, sizes, base.shape));
  }
  get dtype(): DTypeInfo {
    return this.base.dtype;
  }
  describe(): string {
    return `[${this.offsets}]+[${this.shape}] of ${this.base.describe()}`;
  }
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void {
    const nd = this.shape.length;
    const es = this.dtype.size;
    const idx = new Array<number>(nd);
    let flat = first;
    let at = outAt;
    const stop = first + count;
    while (flat < stop) {
      unravel(flat, this.shape, idx);
      const run = Math.min(nd === 0 ? 1 : (this.shape[this.j]! - idx[this.j]!) * this.p - (flat % this.p), stop - flat);
      let b = 0;
      for (let d = 0; d < nd; d++) b += (this.offsets[d]! + idx[d]!) * this.bstride[d]!;
      this.base.readElements(b, run, out, at);
      at += run * es;
      flat += run;
    }
  }
}

/**
 * Calls `sink` with the source's row-major bytes in order, in chunks of at most STREAM_CHUNK
 * bytes. The chunk buffer is reused: `sink` must consume it before returning.
 */
export function streamSource(src: TensorSource, sink: (chunk: Uint8Array) => void, checkCancelled?: () => void): void {
  const es = src.dtype.size;
  const per = Math.max(1, Math.floor(STREAM_CHUNK / es));
  const buf = Buffer.allocUnsafe(Math.min(per, Math.max(src.numel, 1)) * es);
  for (let e = 0; e < src.numel; e += per) {
    checkCancelled?.();
    const n = Math.min(per, src.numel - e);
    src.readElements(e, n, buf, 0);
    sink(buf.subarray(0, n * es));
  }
  if (src instanceof ViewSource) src.release();
}

/**
 * A source's row-major bytes seen as a file, so the torch zip writer can stream an assembled
 * tensor like any stored record (`TorchStorage.locate` returns a range of this reader).
 */
export class SourceReader implements RandomAccessReader {
  readonly size: number;
  constructor(
    readonly source: TensorSource,
    readonly name: string,
  ) {
    this.size = source.numel * source.dtype.size;
  }
  read(offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.size) fail('internal', `${this.name}: read ${offset}+${length} outside its ${this.size} bytes`);
    const es = this.source.dtype.size;
    const first = Math.floor(offset / es);
    const last = Math.ceil((offset + length) / es);
    const buf = Buffer.allocUnsafe((last - first) * es);
    this.source.readElements(first, last - first, buf, 0);
    const skip = offset - first * es;
    return skip === 0 && buf.length === length ? buf : buf.subarray(skip, skip + length);
  }
  close(): void {}
}
