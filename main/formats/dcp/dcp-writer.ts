/**
 * Writes a `torch.distributed.checkpoint` folder that `dcp.load` and `dcp_to_torch_save` read:
 * one data file `__<rank>_0.distcp` per rank, holding one complete `torch.save` archive per item
 * (bytes items first, then tensor chunks, as `_write_files_from_queue` orders them), and the
 * `.metadata` pickle (torch/distributed/checkpoint/filesystem.py `_FileSystemWriter.finish`,
 * metadata.py dataclasses; see dcp.ts for the layout).
 *
 * Each item archive is written where it lies in the data file but with zip offsets relative to
 * its own start, as torch's stream writer records them (the reader gets the item as a file view,
 * `_create_file_view`). Items start on 64-byte boundaries so that torch's 64-byte data alignment
 * inside each archive holds in the file too; the bytes between items belong to no item.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { crc32 } from '../../io/crc32.ts';
import { endWriteBehind, startWriteBehind, writeAll } from '../../io/write-all.ts';
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import { METADATA_FILE } from './dcp.ts';
import { pickleValue } from '../pickle/pickler.ts';
import { PyDict, PyGlobal, PyList, PyObject, PyTuple, type PyValue } from '../values/python-values.ts';
import { STREAM_CHUNK } from '../../io/random-access.ts';
import { BoxSource, readRange, type TensorSource } from '../values/tensor-source.ts';
import { TorchZipWriter } from '../torch/torch-zip-writer.ts';
import type { TorchStorage } from '../values/torch-values.ts';
import { plainTensor, sourceStorage } from '../values/virtual-tensor.ts';

export type DcpWriteItem =
  | {
      kind: 'tensor';
      fqn: string;
      path: (string | number)[];
      source: TensorSource;
      requiresGrad: boolean;
      chunks: { offsets: number[]; sizes: number[]; rank: number }[];
    }
  | { kind: 'bytes'; fqn: string; path: (string | number)[]; value: PyValue; rank: number };

export interface WrittenStorageRecord {
  key: string;
  nbytes: number;
  crc32: number;
  /** where the record's data starts, relative to the item's archive */
  dataOffset: number;
}

export interface WrittenItem {
  fqn: string;
  kind: 'tensor' | 'bytes';
  /** null for bytes items */
  offsets: number[] | null;
  sizes: number[] | null;
  file: string;
  offset: number;
  length: number;
  storages: WrittenStorageRecord[];
}

export interface DcpWriteResult {
  files: { name: string; bytes: number }[];
  items: WrittenItem[];
  metadataBytes: number;
}

const META = 'torch.distributed.checkpoint.metadata';
const ALIGN = 64;

export interface DcpWriteOptions {
  onBytes?(n: number): void;
  checkCancelled?(): void;
  /**
   * Called once a storage record's bytes are in `file` (a data file's full path) at `offset`, so
   * the caller can read them back in another thread while the next record is written.
   */
  onStorageWritten?(file: string, offset: number, nbytes: number): void;
}

export function dataFileName(rank: number): string {
  return `__${rank}_0.distcp`;
}

/**
 * Writes the folder's files into `dir` (which must exist and be empty: the caller stages it) and
 * fsyncs each; data files are flushed behind the writer (write-all.ts). `ranks` data files are
 * written, even one with nothing in it.
 */
export async function writeDcpFolder(dir: string, items: DcpWriteItem[], ranks: number, opts: DcpWriteOptions = {}): Promise<DcpWriteResult> {
  const written: WrittenItem[] = [];
  const files: { name: string; bytes: number }[] = [];
  const buf = Buffer.allocUnsafe(STREAM_CHUNK);
  for (let r = 0; r < ranks; r++) {
    const name = dataFileName(r);
    const file = path.join(dir, name);
    const fd = fs.openSync(file, 'wx+', 0o644);
    startWriteBehind(fd);
    try {
      let pos = 0;
      const put = (fqn: string, kind: 'tensor' | 'bytes', value: PyValue, box: { offsets: number[]; sizes: number[] } | null): void => {
        pos = Math.ceil(pos / ALIGN) * ALIGN;
        const start = pos;
        const { end, storages } = writeArchiveAt(fd, file, start, value, buf, opts);
        written.push({ fqn, kind, offsets: box?.offsets ?? null, sizes: box?.sizes ?? null, file: name, offset: start, length: end - start, storages });
        pos = end;
      };
      for (const it of items) if (it.kind === 'bytes' && it.rank === r) put(it.fqn, 'bytes', it.value, null);
      for (const it of items) {
        if (it.kind !== 'tensor') continue;
        for (const c of it.chunks) {
          if (c.rank !== r) continue;
          const whole = c.offsets.every((o) => o === 0) && String(c.sizes) === String(it.source.shape);
          const src = whole ? it.source : new BoxSource(it.source, c.offsets, c.sizes);
          put(it.fqn, 'tensor', plainTensor(it.source.dtype, c.sizes, sourceStorage('0', src, 'cpu')), c);
        }
      }
      await endWriteBehind(fd);
      fs.fsyncSync(fd);
      files.push({ name, bytes: pos });
    } finally {
      await endWriteBehind(fd).catch(() => undefined); // after a failure: only wait for the flushes
      fs.closeSync(fd);
    }
  }
  const md = pickleValue(metadataValue(items, written), { storageId: () => fail('internal', '.metadata holds no storages') });
  const mfd = fs.openSync(path.join(dir, METADATA_FILE), 'wx', 0o644);
  try {
    writeAll(mfd, md, 0);
    fs.fsyncSync(mfd);
  } finally {
    fs.closeSync(mfd);
  }
  return { files, items: written, metadataBytes: md.length };
}

/**
 * One `torch.save(value)` archive at `start`: `data.pkl` (protocol 2, the opcodes torch's
 * weights-only loader takes), the records torch writes and one `data/<key>` per storage, streamed.
 */
function writeArchiveAt(
  fd: number,
  file: string,
  start: number,
  value: PyValue,
  buf: Buffer,
  opts: DcpWriteOptions,
): { end: number; storages: WrittenStorageRecord[] } {
  const keys = new Map<TorchStorage, string>();
  const root = (s: TorchStorage): TorchStorage => s.viewOf ?? s;
  const pkl = pickleValue(value, {
    storageId: (s) => {
      const src = root(s);
      let key = keys.get(src);
      if (key === undefined) keys.set(src, (key = String(keys.size)));
      // typed storages pickle as `torch.FloatStorage`, the untyped one as `torch.storage.UntypedStorage` (as write-checkpoint.ts)
      const untyped = src.storageType === 'UntypedStorage' || src.storageType === '_UntypedStorage';
      return new PyTuple([
        'storage',
        untyped ? new PyGlobal('torch.storage', 'UntypedStorage') : new PyGlobal('torch', src.storageType),
        key,
        'cpu',
        src.numel,
      ]);
    },
    tensorRecipe: (t) => {
      const s = t.storage;
      if (s && s.viewOf && t.args[0] === s && typeof t.args[1] === 'number')
        return { rebuild: t.rebuild, args: [s.viewOf, t.args[1] + s.viewOffset / s.dtype.size, ...t.args.slice(2)] };
      return { rebuild: t.rebuild, args: t.args };
    },
  });
  const zip = new TorchZipWriter(fd, 'archive', start);
  zip.addRecord('data.pkl', pkl);
  zip.addRecord('.format_version', Buffer.from('1'));
  zip.addRecord('.storage_alignment', Buffer.from('64'));
  zip.addRecord('byteorder', Buffer.from('little'));
  const storages: WrittenStorageRecord[] = [];
  for (const [s, key] of keys) {
    const range = s.locate();
    const nbytes = s.nbytes;
    if (range.length < nbytes) fail('truncated', `${range.reader.name}: storage ${s.key} has ${range.length} of its ${nbytes} bytes`, range.reader.name);
    let crc = 0;
    const rec = zip.addStreamed(
      `data/${key}`,
      nbytes,
      (write) => {
        for (let done = 0; done < nbytes; ) {
          opts.checkCancelled?.();
          const n = Math.min(buf.length, nbytes - done);
          readRange(range.reader, range.offset + done, buf, 0, n);
          const chunk = buf.subarray(0, n);
          crc = crc32(chunk, crc);
          write(chunk);
          done += n;
          opts.onBytes?.(n);
        }
      },
      undefined,
    );
    storages.push({ key, nbytes, crc32: crc >>> 0, dataOffset: rec.dataOffset - start });
    opts.onStorageWritten?.(file, rec.dataOffset, nbytes);
  }
  const end = zip.finish();
  rebaseArchive(fd, start, end);
  return { end, storages };
}

/**
 * The zip writer records offsets from the start of the file; an item archive needs them from its
 * own start. Rewrites the central directory's local-header offsets, the end record's directory
 * offset and the zip64 records (APPNOTE 4.3.12–4.3.16) by subtracting `start`.
 */
function rebaseArchive(fd: number, start: number, end: number): void {
  if (start === 0) return;
  const read = (at: number, n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const k = fs.readSync(fd, b, got, n - got, at + got);
      if (k === 0) fail('internal', 'item archive is shorter than written');
      got += k;
    }
    return b;
  };
  const write = (b: Buffer, at: number): void => writeAll(fd, b, at);
  const eocdAt = end - 22;
  const eocd = read(eocdAt, 22);
  if (eocd.readUInt32LE(0) !== 0x06054b50) fail('internal', 'item archive has no end record where it was written');
  let cdOffset = eocd.readUInt32LE(16);
  let cdSize = eocd.readUInt32LE(12);
  if (eocdAt - 20 >= start) {
    const loc = read(eocdAt - 20, 20);
    if (loc.readUInt32LE(0) === 0x07064b50) {
      const recAt = Number(loc.readBigUInt64LE(8));
      const rec = read(recAt, 56);
      cdSize = Number(rec.readBigUInt64LE(40));
      cdOffset = Number(rec.readBigUInt64LE(48));
      rec.writeBigUInt64LE(BigInt(cdOffset - start), 48);
      write(rec, recAt);
      loc.writeBigUInt64LE(BigInt(recAt - start), 8);
      write(loc, eocdAt - 20);
    }
  }
  if (eocd.readUInt32LE(16) !== 0xffffffff) {
    eocd.writeUInt32LE(cdOffset - start, 16);
    write(eocd, eocdAt);
  }
  const cd = read(cdOffset, cdSize);
  for (let p = 0; p < cd.length; ) {
    if (cd.readUInt32LE(p) !== 0x02014b50) fail('internal', 'item archive central directory is not where it was written');
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const off = cd.readUInt32LE(p + 42);
    if (off !== 0xffffffff) cd.writeUInt32LE(off - start, p + 42);
    else {
      // zip64 extra field: only the overflowed values, in the order uncompressed, compressed, offset
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
        const id = cd.readUInt16LE(e);
        const size = cd.readUInt16LE(e + 2);
        if (id === 1) {
          let q = e + 4;
          if (cd.readUInt32LE(p + 24) === 0xffffffff) q += 8;
          if (cd.readUInt32LE(p + 20) === 0xffffffff) q += 8;
          cd.writeBigUInt64LE(cd.readBigUInt64LE(q) - BigInt(start), q);
        }
        e += 4 + size;
      }
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  write(cd, cdOffset);
}

// ---- .metadata --------------------------------------------------------------------------

function dataclass(cls: string, state: PyValue | undefined, module = META): PyObject {
  const o = new PyObject(new PyGlobal(module, cls), [], 'newobj');
  o.state = state;
  return o;
}

function dict(pairs: [PyValue, PyValue][]): PyDict {
  const d = new PyDict();
  for (const [k, v] of pairs) d.set(k, v);
  return d;
}

function size(xs: number[]): PyObject {
  return new PyObject(new PyGlobal('torch', 'Size'), [new PyTuple(xs)], 'reduce');
}

/** `TensorProperties.__getstate__`: (dtype, layout, requires_grad, memory format encoding, pin_memory). */
function properties(dtype: DTypeInfo, requiresGrad: boolean): PyObject {
  return dataclass(
    'TensorProperties',
    new PyTuple([
      new PyGlobal('torch', dtype.name),
      new PyObject(new PyGlobal('torch.serialization', '_get_layout'), ['torch.strided'], 'reduce'),
      requiresGrad,
      new PyObject(new PyGlobal(META, '_MEM_FORMAT_ENCODING'), [0], 'reduce'),
      false,
    ]),
  );
}

/** `Metadata(state_dict_metadata, planner_data, storage_data, storage_meta, version)` as `finish` writes it. */
function metadataValue(items: DcpWriteItem[], written: WrittenItem[]): PyObject {
  const sdm = new PyDict();
  const planner = new PyDict();
  const storage = new PyDict();
  const where = new Map(written.map((w) => [`${w.fqn}\0${w.offsets ? w.offsets.join(',') : '-'}`, w]));
  const info = (w: WrittenItem): PyObject =>
    dataclass(
      '_StorageInfo',
      dict([
        ['relative_path', w.file],
        ['offset', w.offset],
        ['length', w.length],
      ]),
      'torch.distributed.checkpoint.filesystem',
    );
  for (const it of items) {
    planner.set(it.fqn, new PyTuple(it.path));
    if (it.kind === 'bytes') {
      sdm.set(it.fqn, dataclass('BytesStorageMetadata', undefined));
      const w = where.get(`${it.fqn}\0-`)!;
      storage.set(
        dataclass(
          'MetadataIndex',
          dict([
            ['fqn', it.fqn],
            ['index', null],
          ]),
        ),
        info(w),
      );
      continue;
    }
    const chunks = it.chunks.map((c) =>
      dataclass(
        'ChunkStorageMetadata',
        dict([
          ['offsets', size(c.offsets)],
          ['sizes', size(c.sizes)],
        ]),
      ),
    );
    sdm.set(
      it.fqn,
      dataclass(
        'TensorStorageMetadata',
        dict([
          ['properties', properties(it.source.dtype, it.requiresGrad)],
          ['size', size([...it.source.shape])],
          ['chunks', new PyList(chunks)],
        ]),
      ),
    );
    it.chunks.forEach((c, i) => {
      const w = where.get(`${it.fqn}\0${c.offsets.join(',')}`)!;
      storage.set(
        dataclass(
          'MetadataIndex',
          dict([
            ['fqn', it.fqn],
            ['index', i],
            ['offset', size(c.offsets)],
          ]),
        ),
        info(w),
      );
    });
  }
  const meta = dataclass(
    'StorageMeta',
    dict([
      ['checkpoint_id', null],
      ['save_id', randomUUID()],
      ['load_id', null],
      ['modules', new PyList()],
    ]),
  );
  return dataclass(
    'Metadata',
    dict([
      ['state_dict_metadata', sdm],
      ['planner_data', planner],
      ['storage_data', storage],
      ['storage_meta', meta],
      ['version', '1.0.0'],
    ]),
  );
}
