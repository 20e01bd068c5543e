import type { ChangedTensor, DiffReport, ValueChange } from '../../shared/diff.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';
import { commonPrefixes } from '../checkpoint/layout.ts';
import { childrenOf, pathText, type PathKey } from '../checkpoint/tree.ts';
import { PyBytes, PyComplex, PyDict, PyFloat, PyList, PyObject, PyTuple, pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { primaryModel } from '../verify/checkpoint-weights.ts';
import { describeChange, newScratch, sameBytes } from './compare-tensor.ts';

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

/**
 * Compares two checkpoints of any readable kind (files, DCP folders, shard sets, FSDP rank
 * families): the model state dict key by key, with wrapper prefixes removed unless `exactKeys`,
 * every other tensor by its path, and the plain values around them (epoch, learning rate,
 * hyper-parameters). Tensor bytes are streamed a chunk at a time.
 */
export function diffCheckpoints(fileA: string, fileB: string, opts: { exactKeys?: boolean } = {}): DiffReport {
  const t0 = performance.now();
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
      let identical = 0;
      let bytesCompared = 0;
      let rawKeysDiffer = a.modelPath !== b.modelPath;
      const scratch = newScratch();
      let compared = 0;
      for (const [key, x] of a.tensors) {
        const y = b.tensors.get(key);
        if (!y) continue;
        bytesCompared += x.tensor.nbytes + y.tensor.nbytes;
        if (x.raw !== y.raw) rawKeysDiffer = true;
        if (x.tensor.device !== y.tensor.device) devicesChanged.push({ key, a: x.tensor.device, b: y.tensor.device });
        if (sameBytes(x.tensor, y.tensor, scratch)) identical++;
        else changed.push({ ...describeChange(key, x.tensor, y.tensor, scratch), index: compared });
        compared++;
      }
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
