import * as fs from 'node:fs';
import { asCheckpointError, fail } from './errors.ts';
import { notRegularFileMessage, specialFileKind } from './file-kind.ts';
import type { FormatReading } from './format-reading.ts';
import { readNpy } from './npy.ts';
import { readNpz } from './npz.ts';
import { PickleInput } from './pickle/pickle-input.ts';
import { unpickle } from './pickle/unpickler.ts';
import { FileReader, type RandomAccessReader } from './random-access.ts';
import { looksLikeSafetensors, readSafetensors } from './safetensors.ts';
import { missingShardsMessage, readSafetensorsShards, readShardIndex } from './shard-index.ts';
import { PyDict } from './pickle/values.ts';
import { basename, join } from 'node:path';
import { looksLikeLegacy, looksLikeTar, readTorchLegacy, readTorchTar } from './torch-legacy.ts';
import { torchPickleHooks } from './torch-pickle.ts';
import { isTorchArchive, openTorchArchive, readTorchZip } from './torch-zip.ts';
import { isTorchScript, readTorchScript } from './torchscript.ts';
import { ZipArchive } from './zip.ts';

/**
 * Opens any supported file by its content, not its name (Netron's `match`/`open` split):
 * torch zip, TorchScript, legacy, tar, safetensors (single or `*.index.json`), npy, npz, and a
 * bare pickle. Reads only the bytes needed to decide and to parse the container.
 */
export function openFormat(path: string): FormatReading {
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
    return openReader(reader);
  } catch (e) {
    reader.close();
    throw asCheckpointError(e, path);
  }
}

export function openReader(reader: RandomAccessReader): FormatReading {
  const name = reader.name;
  if (reader.size === 0) fail('not-a-checkpoint', `${name}: the file is empty`, name);
  const head = reader.read(0, Math.min(reader.size, 64));
  const text = Buffer.from(head).toString('latin1');
  if (text.startsWith('version https://git-lfs.github.com/spec/')) {
    fail('lfs-pointer', `${name}: this is a Git LFS pointer (${reader.size} bytes), not the checkpoint itself; run \`git lfs pull\` to fetch the real file`, name);
  }
  const startsZip = head[0] === 0x50 && head[1] === 0x4b && (head[2] === 0x03 || head[2] === 0x05);
  if (startsZip || ZipArchive.looksLikeZip(reader)) {
    if (!ZipArchive.looksLikeZip(reader)) fail('truncated', `${name}: zip archive without its central directory; the file is truncated (re-download or re-copy it)`, name);
    const zip = ZipArchive.open(reader);
    if (zip.startOffset > 0 && startsZip) {
      // Several archives back to back: a torch.distributed.checkpoint data file (`__R_N.distcp`),
      // one torch.save archive per item, located by the folder's `.metadata`.
      fail('unsupported', `${name}: holds several torch.save archives back to back (a distributed-checkpoint .distcp file); open its folder, which has the .metadata that locates each item`, name);
    }
    if (zip.entries.some((e) => e.name.endsWith('.npy')) && !isTorchArchive(zip)) return readNpz(reader);
    if (!isTorchArchive(zip)) fail('not-a-checkpoint', `${name}: a zip archive, but not a torch one (no data.pkl); first entry ${zip.entries[0]?.name ?? '(none)'}`, name);
    const archive = openTorchArchive(reader);
    return isTorchScript(archive) ? readTorchScript(archive) : readTorchZip(archive);
  }
  if (looksLikeLegacy(reader)) return readTorchLegacy(reader);
  if (looksLikeTar(reader)) return readTorchTar(reader);
  if (looksLikeSafetensors(reader)) return readSafetensors(reader);
  if (text.startsWith('\x93NUMPY')) return readNpy(reader);
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return readBarePickle(reader);
  const shown = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  fail('not-a-checkpoint', `${name}: not a PyTorch checkpoint, safetensors or numpy file (starts with ${shown})`, name);
}

/** A pickle written by `pickle.dump` rather than torch.save (CIFAR batches, HF `training_args.bin`). */
function readBarePickle(reader: RandomAccessReader): FormatReading {
  const file = reader.name;
  const result = unpickle(new PickleInput(reader), torchPickleHooks(file, () => fail('unsupported', `${file}: a bare pickle that refers to torch storages cannot be read without torch's container`, file)), 'pickle');
  return {
    format: 'pickle', records: { pickle_protocol: String(result.protocol) }, root: result.value,
    globals: [...result.globals.values()].map((g) => ({ ...g, record: 'pickle' })), notes: ['a plain pickle, not written by torch.save'], close: () => reader.close(),
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
      format: readings[0]!.format, records: { index: basename(indexPath), shards: String(index.shards.length) }, root,
      globals: readings.flatMap((r) => r.globals), notes: [`${index.shards.length} shards joined by their index`], close: () => readings.forEach((r) => r.close()),
    };
  } catch (e) {
    readings.forEach((r) => r.close());
    throw e;
  }
}
