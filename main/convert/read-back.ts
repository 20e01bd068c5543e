import { openFormat } from '../formats/open-format.ts';
import { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import { rootStorage } from '../checkpoint/inspect.ts';
import { walkTensors, type TensorAt } from '../checkpoint/tree.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import type { TorchStorage, TorchTensor } from '../formats/values/torch-values.ts';
import type { WrittenStorages } from './write-checkpoint.ts';
import { verifyLight } from './read-back-light.ts';
import { crcProblem, matchWritten, sameItems, storageAt, type OutputResult } from './read-back-match.ts';
import { storageIndex, type StorageReadBack } from './storage-read-back.ts';
import type { TensorChecks } from './tensor-checks.ts';

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
  storages: WrittenStorages,
  plannedDevice: (s: TorchStorage) => string,
  readBack: StorageReadBack,
  /**
   * Called once the file is read, before anything is compared, with the security scans of the
   * pickles the reader walked (`OpenFormatOptions.scans`): a check of the written pickle reuses
   * them instead of walking it again. Throwing there stops the verification.
   */
  checkPickles?: (scans: PrescannedPickles) => void,
  /** `walkTensors(planned)`, when the caller has it already */
  expected: TensorAt[] = walkTensors(planned),
): Promise<OutputResult> {
  const crcAt = await readBack.settledByIndex();
  const crcs = (key: string): number | undefined => {
    const i = storageIndex(key);
    return i === null ? undefined : crcAt(i);
  };
  // plain containers of dense tensors (nearly every checkpoint) are decoded by the light VM, which
  // also answers for weights-only loading; anything else is read with the full reader below
  const light = verifyLight(file, shownAs, expected, storages, plannedDevice, crcAt);
  if (light) return light;
  // only the reader: the layout, roles and tree of a full inspection are not needed here and cost
  // as much again for a checkpoint of many small tensors
  const scans = new PrescannedPickles();
  const out = openFormat(file, { scans });
  try {
    checkPickles?.(scans);
    return matchWritten(file, shownAs, expected, walkTensors(out.root), storages, plannedDevice, (checks, i, e, t) =>
      compareTensor(checks, i, e, t, storages, crcs),
    );
  } finally {
    out.close();
  }
}

/** The first difference between a planned tensor and the one read back, or null. */
function compareTensor(
  checks: TensorChecks,
  i: number,
  e: TensorAt,
  t: TorchTensor,
  storages: WrittenStorages,
  crcs: (key: string) => number | undefined,
): string | null {
  const a = e.tensor;
  const b = t;
  if (a.dtype.name !== b.dtype.name) return `dtype ${b.dtype.name}, planned ${a.dtype.name}`;
  if (!sameItems(a.shape, b.shape)) return `shape [${b.shape}], planned [${a.shape}]`;
  if (!sameItems(a.stride, b.stride)) return `stride [${b.stride}], planned [${a.stride}]`;
  if (a.requiresGrad !== b.requiresGrad || a.isParameter !== b.isParameter) return 'requires_grad or Parameter flag changed';
  if (!a.storage || !b.storage) return a.storage || b.storage ? 'storage missing' : null;
  const viewShift = a.storage.viewOf ? a.storage.viewOffset / a.dtype.size : 0;
  if (b.storageOffset !== a.storageOffset + viewShift) return `storage offset ${b.storageOffset}, planned ${a.storageOffset + viewShift}`;
  if (b.device !== checks.device(i)) return `device ${b.device}, planned ${checks.device(i)}`;
  const w = storageAt(storages, b.storage.key);
  if (!w || w.source !== rootStorage(a.storage)) return `stored in the wrong storage (${b.storage.key})`;
  const range = b.storage.locate();
  if (range.offset !== w.dataOffset || range.length !== w.nbytes) return `storage ${b.storage.key} is not where it was written`;
  return crcProblem(checks, i, w, crcs);
}
