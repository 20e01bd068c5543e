import type { OutputReport, TensorCheck } from '../../shared/convert.ts';
import * as fs from 'node:fs';
import { rootStorage } from '../checkpoint/inspect.ts';
import { keyText, type PathKey, type TensorAt } from '../checkpoint/tree.ts';
import { TORCH_2_13 } from '../formats/pickle/scan/torch-allowlists.ts';
import { openTorchArchive } from '../formats/torch/torch-zip.ts';
import type { TorchStorage } from '../formats/values/torch-values.ts';
import { FileReader } from '../io/random-access.ts';
import type { WrittenStorage } from './write-checkpoint.ts';
import { decodeWrittenPickle, WrittenDict, WrittenList, WrittenTensor, WrittenTuple, type WrittenValue } from './written-pickle.ts';

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
  storages: WrittenStorage[],
  plannedDevice: (s: TorchStorage) => string,
  crcs: Map<string, number>,
): OutputReport | null {
  const reader = new FileReader(file);
  let mismatch: string | undefined;
  const checks: TensorCheck[] = [];
  try {
    const archive = openTorchArchive(reader);
    const pkl = archive.zip.get(`${archive.prefix}data.pkl`);
    if (!pkl) return null;
    const decoded = decodeWrittenPickle(archive.zip.readPickleRecord(pkl));
    if ('unsupported' in decoded) return null;
    if ('malformed' in decoded) mismatch = `data.pkl as read back ${decoded.malformed}`;
    else if ([...decoded.globals].some((g) => !TORCH_2_13.allowed.has(g))) return null;
    // two records of one name: the directory's name lookup gives the last, so an earlier one differs
    for (const e of archive.zip.entries) if (archive.zip.get(e.name) !== e) mismatch ??= `two records are named ${e.name}`;
    // each storage record once: in the directory read back, stored, at the offset and with the size written
    const records = new Map<string, string | null>();
    const recordProblem = (w: WrittenStorage): string | null => {
      let p = records.get(w.key);
      if (p !== undefined) return p;
      const e = archive.zip.get(`${archive.prefix}data/${w.key}`);
      const range = e && e.method === 0 && e.uncompressedSize === w.nbytes ? archive.zip.dataRange(e) : null;
      p = range && range.offset === w.dataOffset ? null : `storage ${w.key} is not where it was written`;
      records.set(w.key, p);
      return p;
    };
    const written = 'value' in decoded ? tensorsOf(decoded.value) : [];
    if (!written) return null;
    const byKey = new Map(storages.map((w) => [w.key, w]));
    const find = matcher(written);
    const note = (check: TensorCheck, problem: string): void => {
      check.ok = false;
      check.problem = problem;
      mismatch ??= `${JSON.stringify(check.path)}: ${problem}`;
    };
    for (const e of expected) {
      const src = e.tensor;
      const check: TensorCheck = {
        path: e.path,
        sourcePath: e.path,
        dtype: src.dtype.name,
        shape: src.shape,
        device: src.storage ? plannedDevice(rootStorage(src.storage)) : src.device,
        crc32: '',
        ok: true,
      };
      checks.push(check);
      const t = find(e);
      if (!t) {
        note(check, 'missing from the written file');
        continue;
      }
      const problem = compare(check, e, t, byKey, crcs, recordProblem);
      if (problem) note(check, problem);
    }
    for (const key of find.unmatched()) mismatch ??= `${key}: in the written file but not planned`;
  } finally {
    reader.close();
  }
  return {
    file: shownAs,
    bytes: fs.statSync(file).size,
    storages: storages.length,
    tensors: expected.length,
    verified: mismatch === undefined,
    ...(mismatch ? { mismatch } : {}),
    checks,
  };
}

const hex = (n: number): string => n.toString(16).padStart(8, '0');

function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `compareTensor` of read-back.ts for a decoded record: the first problem, or null. */
function compare(
  check: TensorCheck,
  e: TensorAt,
  b: WrittenTensor,
  byKey: Map<string, WrittenStorage>,
  crcs: Map<string, number>,
  recordProblem: (w: WrittenStorage) => string | null,
): string | null {
  const a = e.tensor;
  if (a.dtype.name !== b.dtype) return `dtype ${b.dtype}, planned ${a.dtype.name}`;
  if (!sameItems(a.shape, b.shape)) return `shape [${b.shape}], planned [${a.shape}]`;
  if (!sameItems(a.stride, b.stride)) return `stride [${b.stride}], planned [${a.stride}]`;
  if (a.requiresGrad !== b.requiresGrad || a.isParameter) return 'requires_grad or Parameter flag changed';
  if (!a.storage) return 'storage missing';
  const viewShift = a.storage.viewOf ? a.storage.viewOffset / a.dtype.size : 0;
  if (b.storageOffset !== a.storageOffset + viewShift) return `storage offset ${b.storageOffset}, planned ${a.storageOffset + viewShift}`;
  if (b.storage.location !== check.device) return `device ${b.storage.location}, planned ${check.device}`;
  const w = byKey.get(b.storage.key);
  if (!w || w.source !== rootStorage(a.storage)) return `stored in the wrong storage (${b.storage.key})`;
  // the reader's view of the record: numel elements of the storage class's dtype (decodeStorageId)
  if (b.storage.numel * b.storage.itemSize !== w.nbytes) return `storage ${w.key} is not where it was written`;
  const where = recordProblem(w);
  if (where) return where;
  if (b.shape.every((d) => d > 0)) {
    let last = b.storageOffset;
    for (let i = 0; i < b.shape.length; i++) last += (b.shape[i]! - 1) * b.stride[i]!;
    if (b.storageOffset < 0 || b.stride.some((s) => s < 0) || (last + 1) * b.itemSize > w.nbytes) return `reaches past its storage ${w.key}`;
  }
  const crc = crcs.get(w.key);
  check.crc32 = crc === undefined ? '' : hex(crc);
  if (crc === undefined) return `storage ${w.key} was not read back`;
  if (crc !== w.crc32)
    return `storage bytes read back have crc32 ${hex(crc)}, the source's are ${hex(w.crc32)}${w.source.recordCrc !== null ? ' (as recorded in the source archive; the source may be corrupt)' : ''}`;
  return null;
}

/** Each planned tensor's written one: at the same place while the paths agree, then by path. */
function matcher(written: WrittenAt[]): ((e: TensorAt) => WrittenTensor | undefined) & { unmatched(): string[] } {
  let next = 0;
  let byPath: Map<string, WrittenAt> | null = null;
  const find = (e: TensorAt): WrittenTensor | undefined => {
    const here = written[next];
    if (!byPath && here && sameItems(here.path, e.path)) {
      next++;
      return here.tensor;
    }
    byPath ??= new Map(written.slice(next).map((t) => [JSON.stringify(t.path), t]));
    const key = JSON.stringify(e.path);
    const t = byPath.get(key);
    byPath.delete(key);
    return t?.tensor;
  };
  return Object.assign(find, {
    unmatched: (): string[] => (byPath ? [...(byPath as Map<string, WrittenAt>).keys()] : written.slice(next).map((t) => JSON.stringify(t.path))),
  });
}

class OddKey extends Error {}

/** The key text `walkTensors` gives a dict key (`keyText`); keys of other kinds go to the full reader. */
function writtenKeyText(k: WrittenValue): PathKey {
  if (k instanceof WrittenTuple) return `(${k.items.map((x) => String(writtenKeyText(x))).join(', ')})`;
  if (k === null || typeof k !== 'object') return keyText(k);
  throw new OddKey();
}

/** `walkTensors` over the decoded values: every tensor at every path, cycles cut. */
function tensorsOf(root: WrittenValue): WrittenAt[] | null {
  const out: WrittenAt[] = [];
  const onPath = new Set<object>();
  const tensorFree = new WeakSet<object>();
  const path: PathKey[] = [];
  let visited = 0;
  let cuts = 0;
  const visit = (v: WrittenValue): void => {
    if (++visited > MAX_NODES) throw new Error(`the written file reaches its tensors by over ${MAX_NODES} paths`);
    if (v instanceof WrittenTensor) {
      out.push({ path: [...path], tensor: v });
      return;
    }
    if (v === null || typeof v !== 'object' || tensorFree.has(v)) return;
    if (onPath.has(v)) {
      cuts++;
      return;
    }
    const [found, cutsBefore] = [out.length, cuts];
    onPath.add(v);
    if (v instanceof WrittenDict) {
      for (const [k, x] of v.entries) {
        path.push(writtenKeyText(k));
        visit(x);
        path.pop();
      }
    } else if (v instanceof WrittenList || v instanceof WrittenTuple) {
      for (let i = 0; i < v.items.length; i++) {
        path.push(i);
        visit(v.items[i]!);
        path.pop();
      }
    }
    onPath.delete(v);
    if (out.length === found && cuts === cutsBefore) tensorFree.add(v);
  };
  try {
    visit(root);
  } catch (e) {
    if (e instanceof OddKey) return null;
    throw e;
  }
  return out;
}
