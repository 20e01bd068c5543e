import type { OutputReport } from '../../shared/convert.ts';
import * as fs from 'node:fs';
import { rootStorage } from '../checkpoint/inspect.ts';
import type { PathKey, TensorAt } from '../checkpoint/tree.ts';
import type { TorchStorage } from '../formats/values/torch-values.ts';
import type { WrittenStorage, WrittenStorages } from './write-checkpoint.ts';
import { hex, TensorChecks } from './tensor-checks.ts';
import { storageIndex } from './storage-read-back.ts';

/** The part of the read-back both readers of a written file share: matching, checks, the report. */

/** An output's report as the worker has it: the per-tensor checks in columns (`TensorChecks`). */
export type OutputResult = Omit<OutputReport, 'checks'> & { checks: TensorChecks };

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
  /** in walk order; a path given may change after the next item is asked for (`writtenTensors`) */
  written: Iterable<{ path: PathKey[]; tensor: T }>,
  storages: WrittenStorages,
  plannedDevice: (s: TorchStorage) => string,
  compare: (checks: TensorChecks, i: number, e: TensorAt, t: T) => string | null,
): OutputResult {
  const walk = written[Symbol.iterator]();
  /** the written tensor not matched yet, while the walk and the plan agree */
  let here = walk.next();
  /** the rest of the walk by path, from the first place the two differ */
  let byPath: Map<string, T> | null = null;
  const rest = (): Map<string, T> => {
    const m = new Map<string, T>();
    for (; !here.done; here = walk.next()) m.set(JSON.stringify(here.value.path), here.value.tensor);
    return m;
  };
  const find = (e: TensorAt): T | undefined => {
    if (!byPath && !here.done && sameItems(here.value.path, e.path)) {
      const t = here.value.tensor;
      here = walk.next();
      return t;
    }
    byPath ??= rest();
    const key = JSON.stringify(e.path);
    const t = byPath.get(key);
    byPath.delete(key);
    return t;
  };
  const checks = new TensorChecks(expected);
  let mismatch: string | undefined;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const src = e.tensor;
    checks.setDevice(i, src.storage ? plannedDevice(rootStorage(src.storage)) : src.device);
    const t = find(e);
    const problem = t === undefined ? 'missing from the written file' : compare(checks, i, e, t);
    if (problem) {
      checks.fail(i, problem);
      mismatch ??= `${JSON.stringify(e.path)}: ${problem}`;
    }
  }
  const left = (byPath as Map<string, T> | null) ?? rest(); // byPath is assigned inside find()
  for (const key of left.keys()) mismatch ??= `${key}: in the written file but not planned`;
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

/** The written storage a key names (the writer's keys are the storages' indexes), or undefined. */
export function storageAt(storages: WrittenStorages, key: string): WrittenStorage | undefined {
  const i = storageIndex(key);
  return i === null ? undefined : storages.at(i);
}

/** The storage's bytes as read back against the source's CRC-32 (recorded as check i's crc32): a problem, or null. */
export function crcProblem(checks: TensorChecks, i: number, w: WrittenStorage, crcs: (key: string) => number | undefined): string | null {
  return crcProblemOf(checks, i, w.key, w.crc32, w.source, crcs(w.key));
}

/** `crcProblem` of storage `key`, written with CRC-32 `written` from `source`, read back with CRC-32 `crc`. */
export function crcProblemOf(checks: TensorChecks, i: number, key: string, written: number, source: TorchStorage, crc: number | undefined): string | null {
  if (crc === undefined) return `storage ${key} was not read back`;
  checks.setCrc(i, crc);
  if (crc === written) return null;
  return `storage bytes read back have crc32 ${hex(crc)}, the source's are ${hex(written)}${source.recordCrc !== null ? ' (as recorded in the source archive; the source may be corrupt)' : ''}`;
}
