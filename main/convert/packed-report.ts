import type { ConversionPlan, ConversionReport, KeyChange, OutputReport, StateDictPlan, TensorCheck } from '../../shared/convert.ts';
import { forEachPathKey, pathLength, type PathKey } from '../checkpoint/tree.ts';
import type { OutputResult } from './read-back-match.ts';
import { CRC_READ, FAILED, hex, type TensorChecks } from './tensor-checks.ts';

// A conversion's report as it leaves the worker thread: its two per-tensor lists (each output's
// checks, each state dict's key changes) as a few typed arrays and one string each, moved to the
// main thread (transferred, not copied), instead of a million small objects the structured clone
// copied one by one (for 500,000 tensors, 0.9 s to send, 1.2 s to receive and 1 GB more at the
// peak). The main thread expands what it reads: `--json` a piece at a time, the service all of it
// for the app; the default CLI output reads only counts.

/**
 * Strings one after another: string i is `text.slice(ends[i - 1] ?? 0, ends[i])` of the text
 * `bytes` holds, one byte per character where every character is below U+0100, else UTF-16 (both
 * give back every string exactly, lone surrogates included). Bytes are moved with the other
 * columns; a string was copied into the message and again out of it, 20 MB each way for 500,000
 * tensor paths.
 */
export interface PackedStrings {
  bytes: Uint8Array;
  encoding: 'latin1' | 'utf16le';
  ends: Uint32Array;
}

/** `OutputReport.checks` in columns. */
export interface PackedChecks {
  count: number;
  /** every key of every path; `numberKeys[k]` 1 where key k is a list index */
  keys: PackedStrings;
  numberKeys: Uint8Array;
  /** path i is keys `pathEnds[i - 1] ?? 0` up to `pathEnds[i]` (a check's sourcePath is its path) */
  pathEnds: Uint32Array;
  /** the dtype names (torch has fewer than 256) */
  dtypes: string[];
  dtypeIds: Uint8Array;
  /** shape i is dims `shapeEnds[i - 1] ?? 0` up to `shapeEnds[i]` */
  dims: Float64Array;
  shapeEnds: Uint32Array;
  devices: string[];
  deviceIds: Uint16Array;
  crcs: Uint32Array;
  /** `CRC_READ`: a CRC was read back; `FAILED`: the check failed (tensor-checks.ts) */
  flags: Uint8Array;
  problems: Map<number, string>;
}

/** `StateDictPlan.keys` in columns. */
export interface PackedKeys {
  count: number;
  from: PackedStrings;
  /** per key: KEPT (`to` is `from`), DROPPED (`to` is null) or RENAMED (the next of `renamed`) */
  kinds: Uint8Array;
  renamed: PackedStrings;
}

export const KEPT = 0;
export const DROPPED = 1;
export const RENAMED = 2;

export type PackedOutputReport = Omit<OutputReport, 'checks'> & { checks: PackedChecks };
export type PackedStateDictPlan = Omit<StateDictPlan, 'keys'> & { keys: PackedKeys };
export type PackedConversionPlan = Omit<ConversionPlan, 'stateDicts'> & { stateDicts: PackedStateDictPlan[] };
export type PackedConversionReport = Omit<ConversionReport, 'outputs' | 'plan'> & { outputs: PackedOutputReport[]; plan: PackedConversionPlan };

/** The report as `convertFile` makes it in the worker: each output's checks in `TensorChecks`. */
export type ConversionResult = Omit<ConversionReport, 'outputs'> & { outputs: OutputResult[] };

function packStrings(strings: readonly string[]): PackedStrings {
  const ends = new Uint32Array(strings.length);
  let end = 0;
  for (let i = 0; i < strings.length; i++) ends[i] = end += strings[i]!.length;
  const text = strings.join('');
  // ASCII (UTF-8 as long as the text: what torch's keys are) is counted natively; a regular
  // expression over the whole text took 25-40 ms of the worker for 100,000 tensor paths
  const ascii = Buffer.byteLength(text, 'utf8') === text.length;
  const encoding = ascii || /^[\0-\xff]*$/.test(text) ? 'latin1' : 'utf16le';
  // a buffer of its own (not a slice of Node's pool), so that it can be moved
  const bytes = new Uint8Array(ascii ? text.length : Buffer.byteLength(text, encoding));
  Buffer.from(bytes.buffer).write(text, encoding);
  return { bytes, encoding, ends };
}

/** Each packed list's text, decoded once where it is read. */
const texts = new WeakMap<PackedStrings, string>();

function stringAt(p: PackedStrings, i: number): string {
  let text = texts.get(p);
  if (text === undefined) texts.set(p, (text = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.length).toString(p.encoding)));
  return text.slice(i ? p.ends[i - 1] : 0, p.ends[i]);
}

function packChecks(checks: TensorChecks, transfer: ArrayBuffer[]): PackedChecks {
  const { planned } = checks;
  const n = planned.length;
  // sized first, so that no per-tensor path array or growing list is made (500,000 of each)
  let keyCount = 0;
  let dimCount = 0;
  for (let i = 0; i < n; i++) {
    keyCount += pathLength(planned[i]!);
    dimCount += planned[i]!.tensor.shape.length;
  }
  const keyTexts: string[] = new Array(keyCount);
  const numberKeys = new Uint8Array(keyCount);
  const pathEnds = new Uint32Array(n);
  const dtypes: string[] = [];
  const dtypeIndex = new Map<string, number>();
  const dtypeIds = new Uint8Array(n);
  const dims = new Float64Array(dimCount);
  const shapeEnds = new Uint32Array(n);
  let k = 0;
  let d = 0;
  const addKey = (key: PathKey): void => {
    keyTexts[k] = String(key);
    numberKeys[k++] = typeof key === 'number' ? 1 : 0;
  };
  for (let i = 0; i < n; i++) {
    const t = planned[i]!;
    forEachPathKey(t, addKey);
    pathEnds[i] = k;
    const { dtype, shape } = t.tensor;
    let id = dtypeIndex.get(dtype.name);
    if (id === undefined) dtypeIndex.set(dtype.name, (id = dtypes.push(dtype.name) - 1));
    dtypeIds[i] = id;
    for (const x of shape) dims[d++] = x;
    shapeEnds[i] = d;
  }
  const { crcs, flags, deviceIds, devices, problems } = checks.columns();
  const packed: PackedChecks = {
    count: n,
    keys: packStrings(keyTexts),
    numberKeys,
    pathEnds,
    dtypes,
    dtypeIds,
    dims,
    shapeEnds,
    devices,
    deviceIds: deviceIds.slice(),
    crcs: crcs.slice(),
    flags: flags.slice(),
    problems,
  };
  transfer.push(
    ...buffersOf(
      packed.keys.bytes,
      packed.keys.ends,
      packed.numberKeys,
      pathEnds,
      dtypeIds,
      packed.dims,
      shapeEnds,
      packed.deviceIds,
      packed.crcs,
      packed.flags,
    ),
  );
  return packed;
}

function packKeys(keys: readonly KeyChange[], transfer: ArrayBuffer[]): PackedKeys {
  const kinds = new Uint8Array(keys.length);
  const renamed: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (k.to === null) kinds[i] = DROPPED;
    else if (k.to !== k.from) {
      kinds[i] = RENAMED;
      renamed.push(k.to);
    }
  }
  const packed: PackedKeys = { count: keys.length, from: packStrings(keys.map((k) => k.from)), kinds, renamed: packStrings(renamed) };
  transfer.push(...buffersOf(packed.from.bytes, packed.from.ends, kinds, packed.renamed.bytes, packed.renamed.ends));
  return packed;
}

/** The arrays' buffers (each array here has its own, made for the message). */
const buffersOf = (...arrays: ArrayBufferView[]): ArrayBuffer[] => arrays.map((a) => a.buffer as ArrayBuffer);

/** The buffers each packed report moves to the receiving thread (`postMessage`'s transfer list). */
const transfers = new WeakMap<object, ArrayBuffer[]>();

export const transferListOf = (packed: unknown): ArrayBuffer[] => (typeof packed === 'object' && packed !== null ? (transfers.get(packed) ?? []) : []);

/** The report for another thread: the per-tensor lists packed; `transferListOf` gives their buffers. */
export function packConversionReport(r: ConversionResult): PackedConversionReport {
  const transfer: ArrayBuffer[] = [];
  const packed: PackedConversionReport = {
    ...r,
    plan: { ...r.plan, stateDicts: r.plan.stateDicts.map((sd) => ({ ...sd, keys: packKeys(sd.keys, transfer) })) },
    outputs: r.outputs.map((o) => ({ ...o, checks: packChecks(o.checks, transfer) })),
  };
  transfers.set(packed, transfer);
  return packed;
}

/** Check i of packed checks, as `TensorChecks.at` gives it. */
export function checkAt(p: PackedChecks, i: number): TensorCheck {
  const path: PathKey[] = [];
  for (let k = i ? p.pathEnds[i - 1]! : 0; k < p.pathEnds[i]!; k++) {
    const text = stringAt(p.keys, k);
    path.push(p.numberKeys[k] ? Number(text) : text);
  }
  const shape: number[] = [];
  for (let d = i ? p.shapeEnds[i - 1]! : 0; d < p.shapeEnds[i]!; d++) shape.push(p.dims[d]!);
  const flags = p.flags[i]!;
  const check: TensorCheck = {
    path,
    sourcePath: path,
    dtype: p.dtypes[p.dtypeIds[i]!]!,
    shape,
    device: p.devices[p.deviceIds[i]!]!,
    crc32: flags & CRC_READ ? hex(p.crcs[i]!) : '',
    ok: !(flags & FAILED),
  };
  if (flags & FAILED) {
    const problem = p.problems.get(i);
    if (problem !== undefined) check.problem = problem;
  }
  return check;
}

/** Keys `from` up to `to` of packed key changes; `renamedBefore` is the number of RENAMED keys before `from`. */
export function keyChangesIn(p: PackedKeys, from: number, to: number, renamedBefore: number): KeyChange[] {
  const out: KeyChange[] = [];
  to = Math.min(to, p.count);
  let r = renamedBefore;
  for (let i = from; i < to; i++) {
    const f = stringAt(p.from, i);
    const kind = p.kinds[i];
    out.push({ from: f, to: kind === KEPT ? f : kind === DROPPED ? null : stringAt(p.renamed, r++) });
  }
  return out;
}

/** The report as the API states it: every check and key change expanded. */
export function unpackConversionReport(p: PackedConversionReport): ConversionReport {
  return {
    ...p,
    plan: { ...p.plan, stateDicts: p.plan.stateDicts.map((sd) => ({ ...sd, keys: keyChangesIn(sd.keys, 0, sd.keys.count, 0) })) },
    outputs: p.outputs.map((o) => ({ ...o, checks: checksIn(o.checks, 0, o.checks.count) })),
  };
}

/**
 * The key changes a piece at a time, in order (the `--json` writer): piece `from`..`to` needs the
 * number of renamed keys before `from`, counted as the pieces go.
 */
export function keyChangePieces(p: PackedKeys): (from: number, to: number) => KeyChange[] {
  return inPieces(p, keyChangesIn);
}

/** A list's pieces in order, each made by `piece` with the number of RENAMED keys before it (counted as the pieces go). */
export function inPieces<T>(p: PackedKeys, piece: (p: PackedKeys, from: number, to: number, renamedBefore: number) => T): (from: number, to: number) => T {
  let at = 0;
  let renamed = 0;
  const renamedIn = (from: number, to: number): number => {
    let n = 0;
    for (let i = from; i < to; i++) if (p.kinds[i] === RENAMED) n++;
    return n;
  };
  return (from, to) => {
    to = Math.min(to, p.count);
    if (from !== at) renamed = renamedIn(0, from);
    const made = piece(p, from, to, renamed);
    renamed += renamedIn(from, to);
    at = to;
    return made;
  };
}

/** How many keys are renamed and dropped, and the first `show` of each (the plan's text lines). */
export function keyChangeCounts(
  keys: readonly KeyChange[] | PackedKeys,
  show: number,
): { total: number; changed: KeyChange[]; changedCount: number; dropped: KeyChange[]; droppedCount: number } {
  if (Array.isArray(keys)) {
    const changed = keys.filter((k) => k.to !== null && k.to !== k.from);
    const dropped = keys.filter((k) => k.to === null);
    return { total: keys.length, changed: changed.slice(0, show), changedCount: changed.length, dropped: dropped.slice(0, show), droppedCount: dropped.length };
  }
  const p = keys as PackedKeys;
  const changed: KeyChange[] = [];
  const dropped: KeyChange[] = [];
  let changedCount = 0;
  let droppedCount = 0;
  for (let i = 0; i < p.count; i++) {
    const kind = p.kinds[i];
    if (kind === RENAMED && changedCount++ < show) changed.push({ from: stringAt(p.from, i), to: stringAt(p.renamed, changedCount - 1) });
    else if (kind === DROPPED && droppedCount++ < show) dropped.push({ from: stringAt(p.from, i), to: null });
  }
  return { total: p.count, changed, changedCount, dropped, droppedCount };
}

/** Checks `from` up to `to` (clamped to the count). */
export function checksIn(p: PackedChecks, from: number, to: number): TensorCheck[] {
  const out: TensorCheck[] = [];
  for (let i = from; i < Math.min(to, p.count); i++) out.push(checkAt(p, i));
  return out;
}
