import type { OutputReport, TensorCheck } from '../../shared/convert.ts';
import * as fs from 'node:fs';
import { openFormat } from '../formats/open-format.ts';
import { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import { rootStorage } from '../checkpoint/inspect.ts';
import { walkTensors, type TensorAt } from '../checkpoint/tree.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import type { TorchStorage } from '../formats/values/torch-values.ts';
import type { WrittenStorage } from './write-checkpoint.ts';
import { verifyLight } from './read-back-light.ts';

/**
 * Re-opens a written file with the reader and checks it against the plan: the same tensor paths,
 * each with the planned dtype, shape, stride, offset and device, on the storage planned for it,
 * whose bytes as read back from the file have the CRC-32 of the source bytes. Equal storage bytes
 * and equal views mean equal tensor values.
 *
 * `readBack` gives the CRC-32 of each written storage as read back from the file (computed in a
 * helper thread while later storages were still being copied).
 */
export async function verifyOutput(
  file: string,
  shownAs: string,
  planned: PyValue,
  storages: WrittenStorage[],
  plannedDevice: (s: TorchStorage) => string,
  readBack: Map<string, Promise<number>>,
  /**
   * Called once the file is read, before anything is compared, with the security scans of the
   * pickles the reader walked (`OpenFormatOptions.scans`): a check of the written pickle reuses
   * them instead of walking it again. Throwing there stops the verification.
   */
  checkPickles?: (scans: PrescannedPickles) => void,
): Promise<OutputReport> {
  const expected = walkTensors(planned);
  const byKey = new Map(storages.map((w) => [w.key, w]));
  const crcs = new Map<string, number>();
  for (const [k, p] of readBack) crcs.set(k, await p);
  // plain containers of dense tensors (nearly every checkpoint) are decoded by the light VM, which
  // also answers for weights-only loading; anything else is read with the full reader below
  const light = verifyLight(file, shownAs, expected, storages, plannedDevice, crcs);
  if (light) return light;
  // only the reader: the layout, roles and tree of a full inspection are not needed here and cost
  // as much again for a checkpoint of many small tensors
  const scans = new PrescannedPickles();
  const out = openFormat(file, { scans });
  try {
    checkPickles?.(scans);
    // The written tree walks in the planned order, so each planned tensor is matched with the one
    // at the same place when their paths are equal; from the first that differs, by path key.
    const written = walkTensors(out.root);
    let next = 0;
    let got: Map<string, TensorAt> | null = null;
    const find = (e: TensorAt): TensorAt | undefined => {
      const here = written[next];
      if (!got && here && sameItems(here.path, e.path)) {
        next++;
        return here;
      }
      got ??= new Map(written.slice(next).map((t) => [JSON.stringify(t.path), t]));
      const key = JSON.stringify(e.path);
      const t = got.get(key);
      got.delete(key);
      return t;
    };
    const checks: TensorCheck[] = [];
    let mismatch: string | undefined;
    const note = (check: TensorCheck, problem: string): void => {
      check.ok = false;
      check.problem = problem;
      mismatch ??= `${JSON.stringify(check.path)}: ${problem}`;
    };
    for (const e of expected) {
      const t = find(e);
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
      if (!t) {
        note(check, 'missing from the written file');
        continue;
      }
      compareTensor(check, e, t, byKey, crcs, note);
    }
    const left = got as Map<string, TensorAt> | null; // assigned inside find()
    const unplanned = left ? [...left.keys()] : written.slice(next).map((t) => JSON.stringify(t.path));
    for (const key of unplanned) mismatch ??= `${key}: in the written file but not planned`;
    return {
      file: shownAs,
      bytes: fs.statSync(file).size,
      storages: storages.length,
      tensors: expected.length,
      verified: mismatch === undefined,
      ...(mismatch ? { mismatch } : {}),
      checks,
    };
  } finally {
    out.close();
  }
}

const hex = (n: number): string => n.toString(16).padStart(8, '0');

/** Equal lists item by item (shapes, strides, tensor paths: a number key never equals its text). */
function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareTensor(
  check: TensorCheck,
  e: TensorAt,
  t: TensorAt,
  byKey: Map<string, WrittenStorage>,
  crcs: Map<string, number>,
  note: (c: TensorCheck, p: string) => void,
): void {
  const a = e.tensor;
  const b = t.tensor;
  if (a.dtype.name !== b.dtype.name) return note(check, `dtype ${b.dtype.name}, planned ${a.dtype.name}`);
  if (!sameItems(a.shape, b.shape)) return note(check, `shape [${b.shape}], planned [${a.shape}]`);
  if (!sameItems(a.stride, b.stride)) return note(check, `stride [${b.stride}], planned [${a.stride}]`);
  if (a.requiresGrad !== b.requiresGrad || a.isParameter !== b.isParameter) return note(check, 'requires_grad or Parameter flag changed');
  if (!a.storage || !b.storage) {
    if (a.storage || b.storage) note(check, 'storage missing');
    return;
  }
  const viewShift = a.storage.viewOf ? a.storage.viewOffset / a.dtype.size : 0;
  if (b.storageOffset !== a.storageOffset + viewShift) return note(check, `storage offset ${b.storageOffset}, planned ${a.storageOffset + viewShift}`);
  if (b.device !== check.device) return note(check, `device ${b.device}, planned ${check.device}`);
  const w = byKey.get(b.storage.key);
  if (!w || w.source !== rootStorage(a.storage)) return note(check, `stored in the wrong storage (${b.storage.key})`);
  const range = b.storage.locate();
  if (range.offset !== w.dataOffset || range.length !== w.nbytes) return note(check, `storage ${b.storage.key} is not where it was written`);
  const crc = crcs.get(w.key);
  check.crc32 = crc === undefined ? '' : hex(crc);
  if (crc === undefined) return note(check, `storage ${w.key} was not read back`);
  if (crc !== w.crc32)
    note(
      check,
      `storage bytes read back have crc32 ${hex(crc)}, the source's are ${hex(w.crc32)}${w.source.recordCrc !== null ? ' (as recorded in the source archive; the source may be corrupt)' : ''}`,
    );
}
