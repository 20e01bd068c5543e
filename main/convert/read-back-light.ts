import { rootStorage } from '../checkpoint/inspect.ts';
import { keyText, type PathKey, type TensorAt } from '../checkpoint/tree.ts';
import { TORCH_2_13 } from '../formats/pickle/scan/torch-allowlists.ts';
import { openTorchArchive } from '../formats/torch/torch-zip.ts';
import type { TorchStorage } from '../formats/values/torch-values.ts';
import { FileReader } from '../io/random-access.ts';
import type { WrittenStorages } from './write-checkpoint.ts';
import { crcProblemOf, matchWritten, sameItems, type OutputResult } from './read-back-match.ts';
import { storageIndex } from './storage-read-back.ts';
import { readOwnRecords } from './read-back-records.ts';
import type { ZipEntry } from '../formats/zip/zip.ts';
import type { TensorChecks } from './tensor-checks.ts';
import {
  decodeWritten,
  WrittenDict,
  WrittenList,
  WrittenTensor,
  WrittenTuple,
  type RootItem,
  type WrittenPickle,
  type WrittenValue,
} from './written-pickle.ts';

/** Visiting more nodes than this means the tree is pathological (as `walkTensors` says). */
const MAX_NODES = 5_000_000;

interface WrittenAt {
  path: PathKey[];
  tensor: WrittenTensor;
}

/**
 * The read-back check of a written torch zip without the full reader: the central directory is
 * read back from the file, `data.pkl` is read back and decoded by `decodeWrittenPickle` (a VM of
 * its own, not the pickler), and every planned tensor is compared with the one at its path, field
 * by field as `compareTensor` does, and its storage record with where and what was written.
 * A pickle that also loads with `torch.load(weights_only=True)`: only the opcodes that VM knows
 * (all in torch's weights-only unpickler) and only allowlisted globals.
 *
 * Returns null when the pickle holds something that VM does not decode (objects, parameters,
 * subclasses, non-allowlisted globals): the caller then reads the file with the full reader.
 */
export function verifyLight(
  file: string,
  shownAs: string,
  expected: TensorAt[],
  storages: WrittenStorages,
  plannedDevice: (s: TorchStorage) => string,
  /** the CRC-32 of storage i as read back */
  crcAt: (i: number) => number | undefined,
): OutputResult | null {
  const reader = new FileReader(file);
  try {
    const archive = readOwnRecords(reader, storages) ?? readArchive(reader, storages);
    if (!archive) return null;
    const walked = new WeakSet<object>();
    const decoding = decodeWritten(archive.pickle, walked);
    const end: { decoded?: WrittenPickle } = {};
    const match = (written: Iterable<WrittenAt>): OutputResult =>
      matchWritten(file, shownAs, expected, written, storages, plannedDevice, (checks, i, e, t) => compare(checks, i, e, t, storages, crcAt, archive.inPlace));
    // the tensors are matched as the decoding hands them out: a flat state dict's are never all held
    let report: OutputResult | null = null;
    let walkError: unknown = null;
    try {
      report = match(writtenTensors(decoding, walked, end));
    } catch (e) {
      walkError = e;
    }
    const decoded = end.decoded ?? rest(decoding);
    if ('unsupported' in decoded) return null;
    // a pickle no VM reads has no tensors to compare: every planned one is missing
    if ('malformed' in decoded) report = match([]);
    else if (walkError instanceof OddKey || [...decoded.globals].some((g) => !TORCH_2_13.allowed.has(g))) return null;
    else if (walkError !== null) throw walkError;
    if (!report) throw new Error('the read-back matched nothing'); // each branch above assigns or leaves
    // the archive as a whole: a pickle no VM reads, or two records of one name (the directory's
    // name lookup gives the last, so an earlier one differs), fail it whatever the tensors say
    const twice = archive.shadowed;
    const whole = 'malformed' in decoded ? `data.pkl as read back ${decoded.malformed}` : twice ? `two records are named ${twice}` : null;
    if (whole) {
      report.verified = false;
      report.mismatch = whole;
    }
    return report;
  } finally {
    reader.close();
  }
}

/**
 * What the check needs of the written archive: `data.pkl` as read back, which storage records are
 * where the writer put them (by storage index), and the first name two records share. Read
 * before the pickle is decoded, so the directory of a 500,000-record file (90 MB) is not held
 * while it is. Null where the full reader should check the file instead.
 */
function readArchive(reader: FileReader, storages: WrittenStorages): { pickle: Uint8Array; inPlace: Uint8Array; shadowed: string | null } | null {
  const archive = openTorchArchive(reader);
  const pkl = archive.zip.get(`${archive.prefix}data.pkl`);
  // what the full scan refuses at the archive level (no data.pkl, TorchScript, encrypted records)
  // is left to it: the writer makes none of these, so such a file is not this writer's output
  if (!pkl || archive.zip.get(`${archive.prefix}constants.pkl`) || archive.zip.entries.some((e) => e.encrypted)) return null;
  // each storage record: in the directory read back (`data/<index>`, the last of that name, as the
  // directory's name lookup gives it), stored, at the offset and with the size written
  const dataFolder = `${archive.prefix}data/`;
  const recordOf: (ZipEntry | undefined)[] = [];
  for (const e of archive.zip.entries) {
    const i = e.name.startsWith(dataFolder) ? storageIndex(e.name.slice(dataFolder.length)) : null;
    if (i !== null) recordOf[i] = e;
  }
  const inPlace = new Uint8Array(storages.length);
  for (let i = 0; i < storages.length; i++) {
    const e = recordOf[i];
    const range = e && e.method === 0 && e.uncompressedSize === storages.nbytes(i) ? archive.zip.dataRange(e) : null;
    if (range && range.offset === storages.dataOffset(i)) inPlace[i] = 1;
  }
  return { pickle: archive.zip.readPickleRecord(pkl), inPlace, shadowed: archive.zip.firstShadowed()?.name ?? null };
}

/** `compareTensor` of read-back.ts for a decoded record: the first problem, or null. */
function compare(
  checks: TensorChecks,
  i: number,
  e: TensorAt,
  b: WrittenTensor,
  storages: WrittenStorages,
  crcAt: (i: number) => number | undefined,
  /** by storage index: 1 where its record is where it was written (`RecordsReadBack.inPlace`) */
  inPlace: Uint8Array,
): string | null {
  const a = e.tensor;
  if (a.dtype.name !== b.dtype) return `dtype ${b.dtype}, planned ${a.dtype.name}`;
  if (!sameItems(a.shape, b.shape)) return `shape [${b.shape}], planned [${a.shape}]`;
  if (!sameItems(a.stride, b.stride)) return `stride [${b.stride}], planned [${a.stride}]`;
  if (a.requiresGrad !== b.requiresGrad || a.isParameter) return 'requires_grad or Parameter flag changed';
  if (!a.storage) return 'storage missing';
  const viewShift = a.storage.viewOf ? a.storage.viewOffset / a.dtype.size : 0;
  if (b.storageOffset !== a.storageOffset + viewShift) return `storage offset ${b.storageOffset}, planned ${a.storageOffset + viewShift}`;
  if (b.storage.location !== checks.device(i)) return `device ${b.storage.location}, planned ${checks.device(i)}`;
  // storage `w` by its index, the writer's key (`storageAt`), without an object per tensor
  const key = b.storage.key;
  const w = storageIndex(key);
  if (w === null || w >= storages.length || storages.source(w) !== rootStorage(a.storage)) return `stored in the wrong storage (${key})`;
  const nbytes = storages.nbytes(w);
  // the reader's view of the record: numel elements of the storage class's dtype (decodeStorageId)
  if (b.storage.numel * b.storage.itemSize !== nbytes || !inPlace[w]) return `storage ${key} is not where it was written`;
  let empty = false;
  let last = b.storageOffset;
  let negative = b.storageOffset < 0;
  for (let d = 0; d < b.shape.length; d++) {
    if (!(b.shape[d]! > 0)) empty = true;
    last += (b.shape[d]! - 1) * b.stride[d]!;
  }
  for (let d = 0; d < b.stride.length; d++) if (b.stride[d]! < 0) negative = true;
  if (!empty && (negative || (last + 1) * b.itemSize > nbytes)) return `reaches past its storage ${key}`;
  return crcProblemOf(checks, i, key, storages.crc32(w), storages.source(w), crcAt(w));
}

class OddKey extends Error {}

/** The key text `walkTensors` gives a dict key (`keyText`); keys of other kinds go to the full reader. */
function writtenKeyText(k: WrittenValue): PathKey {
  if (k instanceof WrittenTuple) return `(${k.items.map((x) => String(writtenKeyText(x))).join(', ')})`;
  if (k === null || typeof k !== 'object') return keyText(k);
  throw new OddKey();
}

/** The decoding run to its end, its items unread (after the walk stopped with an error). */
function rest(decoding: Generator<RootItem, WrittenPickle, undefined>): WrittenPickle {
  for (;;) {
    const step = decoding.next();
    if (step.done) return step.value;
  }
}

/**
 * `walkTensors` over the decoded values: every tensor at every path, cycles cut, one at a time.
 * The top-level container's items are walked as the decoding hands them out, each container met
 * added to `walked` (the decoding refuses to change one later); `end.decoded` is the decoding's
 * result once it is done. The path given is the walk's own, changed by the next step: whoever
 * keeps one copies it (the matching keeps none while the order is the planned one, so 500,000
 * paths are never held). Throws OddKey at a dict key of a kind `walkTensors` does not name.
 */
function* writtenTensors(
  decoding: Generator<RootItem, WrittenPickle, undefined>,
  walked: WeakSet<object>,
  end: { decoded?: WrittenPickle },
): Generator<WrittenAt, void, undefined> {
  const onPath = new Set<object>();
  const tensorFree = new WeakSet<object>();
  const path: PathKey[] = [];
  let visited = 0;
  let found = 0;
  let cuts = 0;
  function* visit(v: WrittenValue): Generator<WrittenAt, void, undefined> {
    if (++visited > MAX_NODES) throw new Error(`the written file reaches its tensors by over ${MAX_NODES} paths`);
    if (v instanceof WrittenTensor) {
      found++;
      yield { path, tensor: v };
      return;
    }
    if (v === null || typeof v !== 'object' || tensorFree.has(v)) return;
    if (onPath.has(v)) {
      cuts++;
      return;
    }
    walked.add(v);
    const foundBefore = found;
    const cutsBefore = cuts;
    onPath.add(v);
    if (v instanceof WrittenDict) {
      for (let j = 0; j < v.keys.length; j++) {
        path.push(writtenKeyText(v.keys[j]!));
        yield* visit(v.values[j]!);
        path.pop();
      }
    } else if (v instanceof WrittenList || v instanceof WrittenTuple) {
      for (let i = 0; i < v.items.length; i++) {
        path.push(i);
        yield* visit(v.items[i]!);
        path.pop();
      }
    }
    onPath.delete(v);
    if (found === foundBefore && cuts === cutsBefore) tensorFree.add(v);
  }
  let step = decoding.next();
  // streamed: the top-level container is on the path while its items are walked, as in `visit`
  if (!step.done) {
    visited++;
    onPath.add(step.value.root);
  }
  // the item handed out, reused (its path and tensor are read before the next is asked for)
  const item: WrittenAt = { path, tensor: null as unknown as WrittenTensor };
  for (; !step.done; step = decoding.next()) {
    const { key, inList, value } = step.value;
    path.push(inList ? (key as number) : writtenKeyText(key));
    // a flat state dict's tensors: `visit` of each without a generator made per tensor
    if (value instanceof WrittenTensor && ++visited <= MAX_NODES) {
      found++;
      item.tensor = value;
      yield item;
    } else yield* visit(value);
    path.pop();
  }
  end.decoded = step.value;
  if ('value' in step.value && !step.value.streamed) yield* visit(step.value.value);
}
