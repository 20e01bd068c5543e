import type { ChangedTensor, DiffReport, ValueChange } from '../../shared/diff.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';
import { commonPrefixes } from '../checkpoint/layout.ts';
import { childrenOf, pathText, type PathKey } from '../checkpoint/tree.ts';
import { PyBytes, PyComplex, PyDict, PyFloat, PyList, PyObject, PyTuple, pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { primaryModel } from '../verify/checkpoint-weights.ts';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ComparePool, comparePairs } from './compare-pool.ts';
import { changeOf } from './compare-tensor.ts';

interface Keyed {
  tensor: TorchTensor;
  /** the key as the file has it */
  raw: string;
}

interface Side {
  tensors: Map<string, Keyed>;
  prefixes: string[];
  modelPath: string;
  values: Map<string, string>;
}

/** Below this many bytes to compare, starting threads costs more than it saves. */
const THREADED_BYTES = 64 << 20;

export interface DiffOptions {
  exactKeys?: boolean;
  /** compare threads; 0 compares on the calling thread (default: one per core, at most 4, for 64 MiB or more) */
  threads?: number;
  cancelled?: () => boolean;
}

/**
 * Compares two checkpoints of any readable kind (files, DCP folders, shard sets, FSDP rank
 * families): the model state dict key by key, with wrapper prefixes removed unless `exactKeys`,
 * every other tensor by its path, and the plain values around them (epoch, learning rate,
 * hyper-parameters). Tensor bytes are streamed a chunk at a time, in compare threads
 * (compare-pool.ts): equal bytes first, the figures only of tensors whose bytes differ.
 */
export async function diffCheckpoints(fileA: string, fileB: string, opts: DiffOptions = {}): Promise<DiffReport> {
  const t0 = performance.now();
  // Large files: the threads start now, while this thread reads the two containers.
  const early = opts.threads ?? (bytesOnDisk(fileA) + bytesOnDisk(fileB) >= THREADED_BYTES ? defaultThreads() : 0);
  const pool = early > 0 ? new ComparePool(early) : null;
  try {
    return await diffOpened(fileA, fileB, opts, pool, t0);
  } finally {
    await pool?.end();
  }
}

const defaultThreads = (): number => Math.min(4, availableParallelism());

/** The size of a file, or of the files directly in a folder; 0 for anything unreadable (openCheckpoint says why). */
function bytesOnDisk(input: string): number {
  try {
    const st = statSync(input);
    if (st.isFile()) return st.size;
    if (!st.isDirectory()) return 0;
    return readdirSync(input, { withFileTypes: true }).reduce((n, e) => n + (e.isFile() ? statSync(join(input, e.name)).size : 0), 0);
  } catch {
    return 0;
  }
}

async function diffOpened(fileA: string, fileB: string, opts: DiffOptions, pool: ComparePool | null, t0: number): Promise<DiffReport> {
  const exactKeys = !!opts.exactKeys;
  const ckA = openCheckpoint(fileA, { shardedRanks: 'consolidate' });
  try {
    const ckB = openCheckpoint(fileB, { shardedRanks: 'consolidate' });
    try {
      const a = sideOf(ckA, exactKeys);
      const b = sideOf(ckB, exactKeys);
      const onlyInA = [...a.tensors.keys()].filter((k) => !b.tensors.has(k));
      const onlyInB = [...b.tensors.keys()].filter((k) => !a.tensors.has(k));
      const changed: ChangedTensor[] = [];
      const devicesChanged: DiffReport['devicesChanged'] = [];
      let bytesCompared = 0;
      let rawKeysDiffer = a.modelPath !== b.modelPath;
      const pairs: { key: string; a: TorchTensor; b: TorchTensor }[] = [];
      for (const [key, x] of a.tensors) {
        const y = b.tensors.get(key);
        if (!y) continue;
        bytesCompared += x.tensor.nbytes + y.tensor.nbytes;
        if (x.raw !== y.raw) rawKeysDiffer = true;
        if (x.tensor.device !== y.tensor.device) devicesChanged.push({ key, a: x.tensor.device, b: y.tensor.device });
        pairs.push({ key, a: x.tensor, b: y.tensor });
      }
      const threads = opts.threads ?? (bytesCompared >= THREADED_BYTES ? defaultThreads() : 0);
      const results = await comparePairs(pairs, { threads, pool, ...(opts.cancelled ? { cancelled: opts.cancelled } : {}) });
      pairs.forEach((p, index) => {
        const c = changeOf(p.key, p.a, p.b, results[index]!);
        if (c) changed.push({ ...c, index });
      });
      const identical = pairs.length - changed.length;
      changed.sort((p, q) => rank(q) - rank(p));
      const values = valueChanges(a.values, b.values);
      const different = onlyInA.length + onlyInB.length + changed.length + values.length > 0;
      const layout = rawKeysDiffer || devicesChanged.length > 0 || a.prefixes.join() !== b.prefixes.join();
      return {
        a: fileA,
        b: fileB,
        verdict: different ? 'different' : layout ? 'layout-only' : 'identical',
        exactKeys,
        prefixesA: a.prefixes,
        prefixesB: b.prefixes,
        onlyInA,
        onlyInB,
        changed,
        identical,
        devicesChanged,
        values,
        bytesCompared,
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      ckB.close();
    }
  } finally {
    ckA.close();
  }
}

/** The tensor a diff report names `key` (wrapper prefixes removed unless `exactKeys`), or null. */
export function tensorOfDiffKey(ck: Checkpoint, key: string, exactKeys: boolean): TorchTensor | null {
  return sideOf(ck, exactKeys).tensors.get(key)?.tensor ?? null;
}

/** Shape and dtype changes first, then by max |Δ|. */
function rank(c: ChangedTensor): number {
  return c.maxAbsDiff === null ? Infinity : Number.isNaN(c.maxAbsDiff) ? Infinity : c.maxAbsDiff + (c.nanAppeared + c.infAppeared ? 1e300 : 0);
}

function sideOf(ck: Checkpoint, exactKeys: boolean): Side {
  const tensors = new Map<string, Keyed>();
  const model = primaryModel(ck.roles);
  const lightning = ck.roles.some((r) => r.kind === 'lightning');
  const keys = (model?.entries ?? []).map((e) => e.key);
  const prefixes = exactKeys ? [] : commonPrefixes(keys, lightning);
  const cut = prefixes.join('').length;
  for (const e of model?.entries ?? []) if (!tensors.has(e.key.slice(cut))) tensors.set(e.key.slice(cut), { tensor: e.tensor, raw: e.key });
  const modelPath = model ? pathText(model.path) : '';
  const under = (p: PathKey[]): boolean => !!model && p.length >= model.path.length && model.path.every((k, i) => String(k) === String(p[i]));
  for (const t of ck.tensors) {
    if (under(t.path)) continue;
    const k = pathText(t.path);
    if (!tensors.has(k)) tensors.set(k, { tensor: t.tensor, raw: k });
  }
  return { tensors, prefixes, modelPath, values: plainValues(ck.reading.root, model ? model.path : null) };
}

/** Scalars and strings in the container, by path, outside the model and any tensor (at most 2,000). */
function plainValues(root: PyValue, skip: PathKey[] | null): Map<string, string> {
  const out = new Map<string, string>();
  const seen = new Set<object>();
  const visit = (v: PyValue, path: PathKey[], depth: number): void => {
    if (out.size >= 2000 || depth > 8) return;
    if (skip && path.length === skip.length && skip.every((k, i) => String(k) === String(path[i]))) return;
    if (v instanceof TorchTensor) return;
    if (v === null || typeof v !== 'object' || v instanceof PyFloat || v instanceof PyComplex || v instanceof PyBytes) {
      if (path.length) out.set(pathText(path), pyRepr(v).slice(0, 200));
      return;
    }
    if (seen.has(v)) return;
    seen.add(v);
    if (!(v instanceof PyDict || v instanceof PyList || v instanceof PyTuple || v instanceof PyObject)) return;
    for (const [k, x] of childrenOf(v)) visit(x, [...path, k], depth + 1);
  };
  visit(root, [], 0);
  return out;
}

function valueChanges(a: Map<string, string>, b: Map<string, string>): ValueChange[] {
  const out: ValueChange[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) out.push({ path: k, a: v, b: b.get(k) ?? null });
  for (const [k, v] of b) if (!a.has(k)) out.push({ path: k, a: null, b: v });
  return out;
}
