import * as fs from 'node:fs';
import { asCheckpointError, fail } from '../errors.ts';
import type { FormatReading } from './values/format-reading.ts';
import { readNpy } from './numpy/npy.ts';
import { readNpz } from './numpy/npz.ts';
import { notRegularFileMessage, specialFileKind } from '../io/file-kind.ts';
import { PickleInput } from './pickle/pickle-input.ts';
import { unpickle } from './pickle/unpickler.ts';
import { FileReader, type RandomAccessReader } from '../io/random-access.ts';
import { looksLikeSafetensors, readSafetensors } from './safetensors/safetensors.ts';
import { missingShardsMessage, readSafetensorsShards, readShardIndex } from './safetensors/shard-index.ts';
import { PyDict } from './values/python-values.ts';
import { basename, join } from 'node:path';
import { looksLikeLegacy, looksLikeTar, readTorchLegacy, readTorchTar } from './torch/torch-legacy.ts';
import { torchPickleHooks } from './torch/torch-pickle.ts';
import { isTorchArchive, readTorchZip, torchArchiveOf, type TorchArchive } from './torch/torch-zip.ts';
import { isTorchScript, readTorchScript } from './torch/torchscript.ts';
import { ZipArchive } from './zip/zip.ts';
import { looksLikeOnnx, readOnnx } from './onnx/onnx-reading.ts';
import type { PrescannedPickles } from './torch/torch-zip.ts';

/**
 * Opens any supported file by its content, not its name (Netron's `match`/`open` split):
 * torch zip, TorchScript, legacy, tar, safetensors (single or `*.index.json`), ONNX, npy, npz, and
 * a bare pickle. Reads only the bytes needed to decide and to parse the container.
 */
export interface OpenFormatOptions {
  /**
   * Where the readers leave the security scans of the pickles they walk (torch zip's data.pkl),
   * for the file's scan to reuse (`securityOfPath`): one walk of the pickle instead of two.
   */
  scans?: PrescannedPickles;
}

export function openFormat(path: string, opts: OpenFormatOptions = {}): FormatReading {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    throw asCheckpointError(e, path);
  }
  if (st.isDirectory()) fail('usage', `${path}: is a folder; give a checkpoint file (or use \`ckpt convert\` for folders)`, path);
  const special = specialFileKind(st);
  if (special) fail('unsupported', notRegularFileMessage(path, special), path);
  if (path.endsWith('.index.json')) return readIndex(path);
  const reader: RandomAccessReader = new FileReader(path);
  try {
    return openReader(reader, opts.scans);
  } catch (e) {
    reader.close();
    throw asCheckpointError(e, path);
  }
}

/**
 * A file being identified: its first bytes, and its zip archive parsed at most once however many
 * readers ask (the end record is located once, the central directory read once).
 */
export class Container {
  readonly head: Uint8Array;
  /** the first bytes as latin1 text, for magic strings */
  readonly text: string;
  private zipEnd: number | null | undefined;
  private archive: ZipArchive | null | undefined;
  private torch: TorchArchive | null | undefined;
  constructor(
    readonly reader: RandomAccessReader,
    /** see `OpenFormatOptions.scans` */
    readonly scans?: PrescannedPickles,
  ) {
    this.head = reader.read(0, Math.min(reader.size, 64));
    this.text = Buffer.from(this.head).toString('latin1');
  }
  get name(): string {
    return this.reader.name;
  }
  /** a local file header or an empty archive's end record at byte 0 */
  get startsZip(): boolean {
    const h = this.head;
    return h[0] === 0x50 && h[1] === 0x4b && (h[2] === 0x03 || h[2] === 0x05);
  }
  /**
   * The zip archive, or null when the file is not one. A file that starts like a zip but has no
   * central directory, or holds several archives back to back, fails here with what it is.
   */
  zip(): ZipArchive | null {
    if (this.archive !== undefined) return this.archive;
    const name = this.name;
    this.zipEnd ??= ZipArchive.findEnd(this.reader);
    if (!this.startsZip && this.zipEnd === null) return (this.archive = null);
    if (this.zipEnd === null) fail('truncated', `${name}: zip archive without its central directory; the file is truncated (re-download or re-copy it)`, name);
    const zip = ZipArchive.open(this.reader, this.zipEnd);
    if (zip.startOffset > 0 && this.startsZip) {
      // Several archives back to back: a torch.distributed.checkpoint data file (`__R_N.distcp`),
      // one torch.save archive per item, located by the folder's `.metadata`.
      fail(
        'unsupported',
        `${name}: holds several torch.save archives back to back (a distributed-checkpoint .distcp file); open its folder, which has the .metadata that locates each item`,
        name,
      );
    }
    return (this.archive = zip);
  }
  /** The torch archive (torch.save zip or TorchScript), or null when the zip is not one. */
  torchArchive(): TorchArchive | null {
    if (this.torch !== undefined) return this.torch;
    const zip = this.zip();
    return (this.torch = zip && isTorchArchive(zip) ? torchArchiveOf(zip) : null);
  }
}

/** One single-container format: whether a file is one, and how to read it. */
export interface FormatEntry {
  name: string;
  match(c: Container): boolean;
  open(c: Container): FormatReading;
}

const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

/**
 * Every single-container format, tried in order; the first that matches reads the file. Adding a
 * format is adding an entry (Netron's `pytorch.js` lists its candidates the same way).
 */
export const FORMATS: readonly FormatEntry[] = [
  {
    name: 'lfs-pointer',
    match: (c) => c.text.startsWith(LFS_POINTER),
    open: (c) =>
      fail(
        'lfs-pointer',
        `${c.name}: this is a Git LFS pointer (${c.reader.size} bytes), not the checkpoint itself; run \`git lfs pull\` to fetch the real file`,
        c.name,
      ),
  },
  {
    name: 'npz',
    match: (c) => c.zip() !== null && c.torchArchive() === null && c.zip()!.entries.some((e) => e.name.endsWith('.npy')),
    open: (c) => readNpz(c.zip()!),
  },
  { name: 'torchscript', match: (c) => c.torchArchive() !== null && isTorchScript(c.torchArchive()!), open: (c) => readTorchScript(c.torchArchive()!) },
  { name: 'torch-zip', match: (c) => c.torchArchive() !== null, open: (c) => readTorchZip(c.torchArchive()!, c.scans) },
  {
    name: 'zip (not torch)',
    match: (c) => c.zip() !== null,
    open: (c) =>
      fail('not-a-checkpoint', `${c.name}: a zip archive, but not a torch one (no data.pkl); first entry ${c.zip()!.entries[0]?.name ?? '(none)'}`, c.name),
  },
  { name: 'torch-legacy', match: (c) => looksLikeLegacy(c.reader), open: (c) => readTorchLegacy(c.reader) },
  { name: 'torch-tar', match: (c) => looksLikeTar(c.reader), open: (c) => readTorchTar(c.reader) },
  { name: 'safetensors', match: (c) => looksLikeSafetensors(c.reader), open: (c) => readSafetensors(c.reader) },
  { name: 'onnx', match: (c) => looksLikeOnnx(c.head), open: (c) => readOnnx(c.reader) },
  { name: 'npy', match: (c) => c.text.startsWith('\x93NUMPY'), open: (c) => readNpy(c.reader) },
  { name: 'pickle', match: (c) => c.head[0] === 0x80 && c.head[1]! >= 2 && c.head[1]! <= 5, open: (c) => readBarePickle(c.reader) },
];

export function openReader(reader: RandomAccessReader, scans?: PrescannedPickles): FormatReading {
  const name = reader.name;
  if (reader.size === 0) fail('not-a-checkpoint', `${name}: the file is empty`, name);
  const container = new Container(reader, scans);
  for (const format of FORMATS) if (format.match(container)) return format.open(container);
  const shown = [...container.head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  fail('not-a-checkpoint', `${name}: not a PyTorch checkpoint, safetensors, ONNX or numpy file (starts with ${shown})`, name);
}

/** A pickle written by `pickle.dump` rather than torch.save (CIFAR batches, HF `training_args.bin`). */
function readBarePickle(reader: RandomAccessReader): FormatReading {
  const file = reader.name;
  const result = unpickle(
    new PickleInput(reader),
    torchPickleHooks(file, () => fail('unsupported', `${file}: a bare pickle that refers to torch storages cannot be read without torch's container`, file)),
    'pickle',
  );
  return {
    format: 'pickle',
    records: { pickle_protocol: String(result.protocol) },
    root: result.value,
    globals: [...result.globals.values()].map((g) => ({ ...g, record: 'pickle' })),
    notes: ['a plain pickle, not written by torch.save'],
    close: () => reader.close(),
  };
}

/**
 * A sharded set from its `*.index.json`: safetensors shards, or torch `.bin` shards (each a
 * torch.save state dict), joined into one state dict in weight_map order.
 */
function readIndex(indexPath: string): FormatReading {
  const index = readShardIndex(indexPath);
  if (index.missing.length) fail('io', missingShardsMessage(index), indexPath);
  if (index.shards.every((s) => s.endsWith('.safetensors'))) return readSafetensorsShards(indexPath);
  const readings: FormatReading[] = [];
  try {
    const byShard = new Map<string, PyDict>();
    for (const shard of index.shards) {
      const r = openFormat(join(index.dir, shard));
      readings.push(r);
      if (!(r.root instanceof PyDict)) fail('not-a-checkpoint', `${shard}: a shard must hold a state dict`, indexPath);
      byShard.set(shard, r.root);
    }
    const root = new PyDict(true);
    for (const [name, shard] of index.weightMap) {
      const t = byShard.get(shard)!.get(name);
      if (t === undefined) fail('not-a-checkpoint', `${indexPath}: the index puts ${JSON.stringify(name)} in ${shard}, which does not hold it`, indexPath);
      root.set(name, t);
    }
    return {
      format: readings[0]!.format,
      records: { index: basename(indexPath), shards: String(index.shards.length) },
      root,
      globals: readings.flatMap((r) => r.globals),
      notes: [`${index.shards.length} shards joined by their index`],
      close: () => readings.forEach((r) => r.close()),
    };
  } catch (e) {
    readings.forEach((r) => r.close());
    throw e;
  }
}
