import type { OutputReport, TensorCheck } from '../../shared/convert.ts';
import * as fs from 'node:fs';
import { rootStorage } from '../checkpoint/inspect.ts';
import type { PathKey, TensorAt } from '../checkpoint/tree.ts';
import type { TorchStorage } from '../formats/values/torch-values.ts';
import type { WrittenStorage } from './write-checkpoint.ts';

/** The part of the read-back both readers of a written file share: matching, checks, the report. */

export const hex = (n: number): string => n.toString(16).padStart(8, '0');

/** Equal lists item by item (shapes, strides, tensor paths: a number key never equals its text). */
export function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks every planned tensor against the written one at its path and builds the report. The
 * written tree walks in the planned order, so each planned tensor is matched with the one at the
 * same place while their paths are equal; from the first that differs, by path key.
 * `compare` gives a matched pair's first problem, or null.
 */
export function matchWritten<T>(
  file: string,
  shownAs: string,
  expected: TensorAt[],
  written: { path: PathKey[]; tensor: T }[],
  storages: WrittenStorage[],
  plannedDevice: (s: TorchStorage) => string,
  compare: (check: TensorCheck, e: TensorAt, t: T) => string | null,
): OutputReport {
  let next = 0;
  let byPath: Map<string, T> | null = null;
  const find = (e: TensorAt): T | undefined => {
    const here = written[next];
    if (!byPath && here && sameItems(here.path, e.path)) {
      next++;
      return here.tensor;
    }
    byPath ??= new Map(written.slice(next).map((t) => [JSON.stringify(t.path), t.tensor]));
    const key = JSON.stringify(e.path);
    const t = byPath.get(key);
    byPath.delete(key);
    return t;
  };
  const checks: TensorCheck[] = [];
  let mismatch: string | undefined;
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
    const problem = t === undefined ? 'missing from the written file' : compare(check, e, t);
    if (problem) {
      check.ok = false;
      check.problem = problem;
      mismatch ??= `${JSON.stringify(check.path)}: ${problem}`;
    }
  }
  const left = byPath as Map<string, T> | null; // assigned inside find()
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
}

/** The storage's bytes as read back against the source's CRC-32 (sets the check's crc32): a problem, or null. */
export function crcProblem(check: TensorCheck, w: WrittenStorage, crcs: Map<string, number>): string | null {
  const crc = crcs.get(w.key);
  check.crc32 = crc === undefined ? '' : hex(crc);
  if (crc === undefined) return `storage ${w.key} was not read back`;
  if (crc === w.crc32) return null;
  return `storage bytes read back have crc32 ${hex(crc)}, the source's are ${hex(w.crc32)}${w.source.recordCrc !== null ? ' (as recorded in the source archive; the source may be corrupt)' : ''}`;
}
