import { fail } from '../errors.ts';
import { doubled } from '../io/doubled.ts';
import { pickleInto, type PickleWriterOptions, type TensorRecipe, type WeightsOnlyRefusal } from '../formats/pickle/pickler.ts';
import { PyGlobal, PyTuple, type PyValue } from '../formats/values/python-values.ts';
import { TorchZipWriter } from '../formats/torch/torch-zip-writer.ts';
import * as fs from 'node:fs';
import { FileReader, STREAM_CHUNK, type RandomAccessReader } from '../io/random-access.ts';
import { crc32 } from '../io/crc32.ts';
import { FileWindow, readRange, streamSource, type AssembledSource } from '../formats/values/tensor-source.ts';
import { assemblyOf } from '../formats/values/virtual-tensor.ts';
import { combinedPieceCrc } from '../formats/values/flat-pieces.ts';
import { TorchStorage, TorchTensor } from '../formats/values/torch-values.ts';
import { rootStorage } from '../checkpoint/inspect.ts';

let copyBuffer: Buffer | null = null;

/** Storages up to this size are read from the source through `SmallReads`. */
const SMALL_STORAGE = 64 << 10;
const WINDOW = 1 << 20;

/**
 * One read for many small storages: torch lays a file's records out one after the other, so a
 * 1 MiB window read at the first small storage holds the next ones too (a 100,000-tensor file is
 * otherwise 100,000 preads of a few bytes). Only whole files and windows of them qualify.
 */
class SmallReads {
  private window: Buffer | null = null;
  private fd = -1;
  private start = 0;
  private length = 0;
  /** The window read last (`at` gives where in it). */
  get bytes(): Buffer {
    return this.window!;
  }

  /**
   * Where in `bytes` the `n` bytes at `offset` of `reader` are, read into it if they are not yet;
   * -1 when the reader is not a file (or ends before them).
   */
  at(reader: RandomAccessReader, offset: number, n: number): number {
    const fd = reader instanceof FileReader ? reader.descriptor : reader instanceof FileWindow ? reader.fd : -1;
    if (fd < 0) return -1;
    const at = offset + (reader instanceof FileWindow ? reader.start : 0);
    if (fd !== this.fd || at < this.start || at + n > this.start + this.length) {
      if (offset + n > reader.size) return -1; // readRange reports it
      this.window ??= Buffer.allocUnsafe(WINDOW);
      const want = Math.min(WINDOW, reader.size - offset);
      let got = 0;
      while (got < want) {
        const k = fs.readSync(fd, this.window, got, want - got, at + got);
        if (k === 0) break;
        got += k;
      }
      [this.fd, this.start, this.length] = [fd, at, got];
      if (got < n) return -1;
    }
    return at - this.start;
  }
}

/**
 * The CRC-32 of an assembled storage the writer just streamed in order: its pieces' CRCs combined.
 * Read again from the sources when a piece was not read in one in-order pass.
 */
function combinedCrc(a: AssembledSource): number {
  const combined = combinedPieceCrc(a);
  if (combined !== null) return combined;
  let crc = 0;
  streamSource(a, (c) => {
    crc = crc32(c, crc);
  });
  return crc >>> 0;
}

/** One copy buffer per thread, grown to the largest storage seen up to STREAM_CHUNK, then reused. */
function bufferFor(bytes: number): Buffer {
  const want = Math.min(STREAM_CHUNK, Math.max(bytes, 1 << 16));
  if (!copyBuffer || copyBuffer.length < want) copyBuffer = Buffer.allocUnsafe(want);
  return copyBuffer;
}

/** One storage as written (a view of `WrittenStorages`: made when asked for, not kept). */
export interface WrittenStorage {
  key: string;
  source: TorchStorage;
  location: string;
  nbytes: number;
  /** CRC-32 of the bytes: computed while copying, or the one the source archive recorded */
  crc32: number;
  /** where the record's data starts in the written file */
  dataOffset: number;
}

/**
 * Every storage written, in order of first use, in columns: storage i has key `String(i)` (the
 * writer's keys are indexes). An object per storage (its key string, boxed CRC) was ~130 bytes
 * of each of a 500,000-storage file's storages, all alive until its read-back was done.
 */
export class WrittenStorages implements Iterable<WrittenStorage> {
  private readonly sources: TorchStorage[] = [];
  private readonly locations: string[] = [];
  private sizes = new Float64Array(256);
  private crcs = new Uint32Array(256);
  private offsets = new Float64Array(256);
  /**
   * The archive these storages were written into, once it is finished: its size and its tail
   * (`TorchZipWriter.tail`), against which the read-back checks the directory on disk.
   */
  archive: { bytes: number; tail: { bytes: number; sha256: string } } | null = null;

  get length(): number {
    return this.sources.length;
  }

  /** Adds a storage to write; returns its index. */
  add(source: TorchStorage, location: string, nbytes: number): number {
    const i = this.sources.length;
    if (i === this.sizes.length) {
      this.sizes = doubled(this.sizes);
      this.crcs = doubled(this.crcs);
      this.offsets = doubled(this.offsets);
    }
    this.sources.push(source);
    this.locations.push(location);
    this.sizes[i] = nbytes;
    return i;
  }

  /** Records storage i's CRC-32 and where its data starts in the file. */
  setWritten(i: number, crc32: number, dataOffset: number): void {
    this.crcs[i] = crc32;
    this.offsets[i] = dataOffset;
  }

  source(i: number): TorchStorage {
    return this.sources[i]!;
  }
  location(i: number): string {
    return this.locations[i]!;
  }
  nbytes(i: number): number {
    return this.sizes[i]!;
  }
  crc32(i: number): number {
    return this.crcs[i]!;
  }
  /** 0 until the record is written */
  dataOffset(i: number): number {
    return this.offsets[i]!;
  }

  /** Storage i as one object, or undefined past the end. */
  at(i: number): WrittenStorage | undefined {
    if (!(i >= 0 && i < this.sources.length)) return undefined;
    return {
      key: String(i),
      source: this.sources[i]!,
      location: this.locations[i]!,
      nbytes: this.sizes[i]!,
      crc32: this.crcs[i]!,
      dataOffset: this.offsets[i]!,
    };
  }

  *[Symbol.iterator](): Iterator<WrittenStorage> {
    for (let i = 0; i < this.sources.length; i++) yield this.at(i)!;
  }
}

export interface WriteResult {
  bytes: number;
  storages: WrittenStorages;
  /** length and SHA-256 of the archive's tail (central directory and end records) */
  tail: { bytes: number; sha256: string };
}

export interface WriteOptions {
  archiveName: string;
  /** the device tag each source storage gets in this output */
  location(s: TorchStorage): string;
  onBytes?(n: number): void;
  /** checked between chunks; throw to cancel */
  checkCancelled?(): void;
  /** called as each storage record is complete, e.g. to verify it while the next is copied */
  onStorageWritten?(w: WrittenStorage): void;
  /**
   * The (root) storages more than one tensor path of `root` uses, when the caller knows them
   * (`distinctStorages`): a storage outside it is met once, and so is the one tensor that uses it,
   * so neither needs a lookup entry (500,000 of each for a 500,000-tensor file). Unknown: all get one.
   */
  sharedStorages?: ReadonlySet<TorchStorage>;
  /**
   * Called before a tuple that holds itself or an int of over 2040 bits is written (pickler.ts
   * `onWeightsOnlyRefusal`): throw to refuse (torch.load(weights_only=True) cannot read it), or note
   * it for --keep-objects' report.
   */
  onWeightsOnlyRefusal?(what: WeightsOnlyRefusal): void;
}

/** What --keep-objects kept, in the report's `kept` list, where the output holds what torch's weights-only unpickler refuses. */
const KEPT: Record<WeightsOnlyRefusal, string> = { POP: 'a tuple that holds itself (POP)', LONG4: 'an int of over 2040 bits (LONG4)' };
/** What the output would hold, in a refusal. */
const HOLDS: Record<WeightsOnlyRefusal, string> = {
  POP: 'a tuple that contains itself, which only the POP opcode writes',
  LONG4: 'an int of over 2040 bits, which only the LONG4 opcode writes',
};

/**
 * `onWeightsOnlyRefusal` for a writer: without --keep-objects a typed refusal naming `source`; with
 * it, `kept` learns what the output holds (torch.load then needs weights_only=False).
 */
export function weightsOnlyRefusals(source: string, keepObjects: boolean, kept: { add(what: string): void }): (what: WeightsOnlyRefusal) => void {
  if (keepObjects) return (what) => kept.add(KEPT[what]);
  return (what) =>
    fail(
      'unsupported',
      `${source}: the output would hold ${HOLDS[what]} and torch.load(weights_only=True) refuses (it refuses the source too); nothing was written; add --keep-objects to write it as torch.save does`,
      source,
    );
}

/**
 * Writes `root` as a torch zip checkpoint: `data.pkl` (protocol 2, weights-only opcodes unless
 * `onWeightsOnlyRefusal` lets a value that needs POP or LONG4 through), the
 * small records torch 2.x writes, then one `data/<key>` record per storage that some tensor uses,
 * streamed from the source file. Storages shared by several tensors stay one storage; storages no
 * tensor uses are not written. Keys are assigned in pickling order, as torch's `persistent_id` does.
 */
export function writeTorchCheckpoint(fd: number, root: PyValue, opts: WriteOptions): WriteResult {
  // every storage written, in order of first use; the shared ones (or all, unknown) also by storage
  const written = new WrittenStorages();
  const keys = new Map<TorchStorage, number>();
  const shared = opts.sharedStorages;
  // one global object per name, not two per tensor (the pickler memoizes globals by name anyway)
  const untypedStorage = new PyGlobal('torch.storage', 'UntypedStorage');
  const rebuildV3 = new PyGlobal('torch._utils', '_rebuild_tensor_v3');
  const torchNames = new Map<string, PyGlobal>();
  const torchGlobal = (name: string): PyGlobal => {
    let g = torchNames.get(name);
    if (!g) torchNames.set(name, (g = new PyGlobal('torch', name)));
    return g;
  };
  const storageId = (s: TorchStorage): PyTuple => {
    const src = rootStorage(s);
    const lookup = !shared || shared.has(src);
    let w = lookup ? keys.get(src) : undefined;
    if (w === undefined) {
      w = written.add(src, opts.location(src), src.nbytes);
      if (lookup) keys.set(src, w);
    }
    // torch/serialization.py `_save`: ('storage', storage_type, key, location, numel). Typed storage
    // classes pickle as `torch.FloatStorage`; the untyped one by its defining module,
    // `torch.storage.UntypedStorage`, which is the name weights-only loading allows.
    const untyped = src.storageType === 'UntypedStorage' || src.storageType === '_UntypedStorage';
    return new PyTuple(['storage', untyped ? untypedStorage : torchGlobal(src.storageType), String(w), written.location(w), src.numel]);
  };
  const tensorRecipe = (t: TorchTensor): TensorRecipe => {
    // the tuples and dict of `args` made for this read are this recipe's alone (see TensorRecipe)
    const freshArgs = t.argsAreMadePerRead;
    // Legacy storage views become their root storage with the offset moved (zip files have no views).
    const s = t.storage;
    // A dtype with no typed storage class (uint16, float8, ...) rides on an untyped storage and
    // needs `_rebuild_tensor_v3`, which names the dtype (torch/_utils.py; torch ≥ 2.1 writes it).
    const v3 = t.rebuild.name === '_rebuild_tensor_v2' && s && s.dtype.name !== t.dtype.name;
    // the plain arguments as they are: written from the tensor's fields, not made (see TensorRecipe)
    if (freshArgs && !v3 && !s?.viewOf) return { rebuild: t.rebuild, args: null, freshArgs };
    let args = t.args;
    if (s && s.viewOf && args[0] === s && typeof args[1] === 'number') args = [s.viewOf, args[1] + s.viewOffset / s.dtype.size, ...args.slice(2)];
    if (v3) return { rebuild: rebuildV3, args: [...args.slice(0, 6), torchGlobal(t.dtype.name)], freshArgs };
    return { rebuild: t.rebuild, args, freshArgs };
  };
  // a tensor whose storage is used by one path is itself met once: no memo entry (see sharedStorages)
  const tensorMayRecur = shared ? (t: TorchTensor): boolean => !t.storage || shared.has(rootStorage(t.storage)) : undefined;
  const zip = new TorchZipWriter(fd, opts.archiveName, 0, true);
  // the pickle goes into the archive as it is made: a 500,000-tensor state dict's is 58 MB
  const pickleOpts: PickleWriterOptions = { storageId, tensorRecipe, ...(tensorMayRecur ? { tensorMayRecur } : {}) };
  if (opts.onWeightsOnlyRefusal) pickleOpts.onWeightsOnlyRefusal = opts.onWeightsOnlyRefusal;
  zip.addUnsized('data.pkl', (write) => pickleInto(root, pickleOpts, write));
  zip.addRecord('.format_version', Buffer.from('1'));
  zip.addRecord('.storage_alignment', Buffer.from('64'));
  zip.addRecord('byteorder', Buffer.from('little'));
  let largest = 0;
  for (let i = 0; i < written.length; i++) largest = Math.max(largest, written.nbytes(i)); // no spread: 100,000 arguments overflow the stack
  const buf = bufferFor(largest);
  const small = new SmallReads();
  // storages whose bytes the zip writer still gathers: reported once they are in the file
  let reported = 0;
  // the bytes of small storages copied since progress was last told, told once per MiB, and
  // cancellation checked once per 256 of them (a 100,000-tensor file is otherwise 100,000
  // progress calls and 100,000 reads of an AbortSignal)
  let untold = 0;
  let smallCopied = 0;
  const tell = (): void => {
    if (!untold) return;
    opts.onBytes?.(untold);
    untold = 0;
    opts.checkCancelled?.(); // as after each streamed chunk: progress told, then a cancel honoured
  };
  const report = (): void => {
    for (; reported < written.length && written.dataOffset(reported) && zip.inFile(written.dataOffset(reported) + written.nbytes(reported)); reported++)
      if (opts.onStorageWritten) opts.onStorageWritten(written.at(reported)!);
  };

  for (let i = 0; i < written.length; i++) {
    const source = written.source(i);
    const nbytes = written.nbytes(i);
    const range = source.locate();
    if (range.length < nbytes) fail('truncated', `${range.reader.name}: storage ${source.key} has ${range.length} of its ${nbytes} bytes`, range.reader.name);
    // A whole stored record keeps its bytes, so the CRC the source recorded for them still holds.
    // A 1-D assembly (DeepSpeed's flat slices) has the CRC of each piece taken as it was read; the
    // record's CRC is theirs combined, so its bytes are not CRC'd a second time here.
    const assembly = assemblyOf(source);
    const known = source.recordCrc ?? (assembly?.shape.length === 1 ? () => combinedCrc(assembly) : undefined);
    const inWindow = nbytes <= SMALL_STORAGE ? small.at(range.reader, range.offset, nbytes) : -1;
    if (inWindow < 0) tell();
    else if (smallCopied++ % 256 === 0) opts.checkCancelled?.(); // a file of small tensors is still cancellable
    const rec =
      inWindow >= 0
        ? zip.addBytes(`data/${i}`, small.bytes, inWindow, inWindow + nbytes, known)
        : zip.addStreamed(
            `data/${i}`,
            nbytes,
            (write) => {
              let done = 0;
              while (done < nbytes) {
                opts.checkCancelled?.();
                const n = Math.min(buf.length, nbytes - done);
                // positioned reads straight into `buf` (pread on a file; an assembled tensor's elements)
                readRange(range.reader, range.offset + done, buf, 0, n);
                const chunk = buf.subarray(0, n);
                write(chunk);
                done += n;
                opts.onBytes?.(n);
              }
            },
            known,
          );
    if (inWindow >= 0 && (untold += nbytes) >= WINDOW) tell();
    written.setWritten(i, rec.crc, rec.dataOffset);
    report();
  }
  tell();
  const bytes = zip.finish();
  written.archive = { bytes, tail: zip.tail! };
  report();
  return { bytes, storages: written, tail: zip.tail! };
}
