/**
 * A checkpoint's model weights as verify needs them: the model state dict (a plain one, one inside
 * a training checkpoint, or a whole pickled module's `state_dict()`), keyed canonically (wrapper
 * prefixes such as `module.` removed), plus what the file says about itself: BatchNorm epsilons
 * (only whole modules carry them) and recorded accuracies (`best_acc`, `acc1`, ...).
 */
import type { RecordedMetric } from '../../shared/verify.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { commonPrefixes } from '../checkpoint/layout.ts';
import type { Role } from '../checkpoint/roles.ts';
import { readTensorBytes } from '../checkpoint/tensor-bytes.ts';
import { childrenOf } from '../checkpoint/tree.ts';
import { fail } from '../errors.ts';
import { numpyScalarValue } from '../formats/numpy/numpy-values.ts';
import { PyDict, PyFloat, PyObject, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { toFloat64 } from './tensor-values.ts';

export interface CheckpointWeights {
  file: string;
  /** canonical key → tensor, in state-dict order */
  tensors: Map<string, TorchTensor>;
  /** the wrapper prefixes removed from every key */
  prefixes: string[];
  /** where the weights are: a state dict or a whole pickled module, and the keys leading to it */
  source: { kind: 'state-dict' | 'module'; path: Role['path'] };
  /** BatchNorm module (canonical path) → eps, from whole pickled modules */
  bnEps: Map<string, number>;
  recorded: RecordedMetric[];
  /** the tensor's little-endian bytes (cached) */
  bytes(key: string): Uint8Array;
  close(): void;
}

export function openWeights(file: string): CheckpointWeights {
  const ck = openCheckpoint(file);
  try {
    const model = primaryModel(ck.roles);
    if (!model) fail('unsupported', `${file}: no model state dict or pickled module found; verify needs the model's weights`, file);
    const entries = model.entries ?? [];
    const lightning = ck.roles.some((r) => r.kind === 'lightning');
    const prefixes = commonPrefixes(
      entries.map((e) => e.key),
      lightning,
    );
    const cut = prefixes.join('').length;
    const tensors = new Map<string, TorchTensor>();
    for (const e of entries) if (!tensors.has(e.key.slice(cut))) tensors.set(e.key.slice(cut), e.tensor);
    const bnEps = new Map<string, number>();
    if (model.kind === 'module') {
      let root: PyValue = ck.reading.root;
      for (const k of model.path) root = childrenOf(root).find(([key]) => key === k)?.[1] ?? null;
      if (root instanceof PyObject) {
        const pre = prefixes.join('');
        for (const [p, eps] of batchNormEps(root)) bnEps.set((p.startsWith(pre) ? p.slice(pre.length) : p).replace(/\.$/, ''), eps);
      }
    }
    const cache = new Map<string, Uint8Array>();
    return {
      file,
      tensors,
      prefixes,
      source: { kind: model.kind === 'module' ? 'module' : 'state-dict', path: model.path },
      bnEps,
      recorded: recordedMetrics(ck.reading.root),
      bytes(key: string): Uint8Array {
        let b = cache.get(key);
        if (!b) {
          const t = tensors.get(key);
          if (!t) fail('internal', `${file}: no tensor ${key}`, file);
          b = readTensorBytes(t);
          cache.set(key, b);
        }
        return b;
      },
      close: () => ck.close(),
    };
  } catch (e) {
    ck.close();
    throw e;
  }
}

/** The state dict or module with the most tensors (what the layout verdict calls the model). */
export function primaryModel(roles: Role[]): Role | undefined {
  return roles
    .filter((r) => (r.kind === 'state-dict' || r.kind === 'module') && (r.entries?.length ?? 0) > 0)
    .reduce<Role | undefined>((best, r) => (r.entries!.length > (best?.entries?.length ?? 0) ? r : best), undefined);
}

/** `<path>.` → eps for every `torch.nn.modules.batchnorm.*` inside a pickled module. */
function batchNormEps(o: PyObject, prefix = '', out: [string, number][] = [], depth = 0): [string, number][] {
  if (depth > 200 || !(o.state instanceof PyDict)) return out;
  if (/^torch\.nn\.modules\.batchnorm\.\w+$/.test(o.className)) {
    const eps = o.state.get('eps');
    const v = eps instanceof PyFloat ? eps.value : typeof eps === 'number' ? eps : null;
    if (v !== null) out.push([prefix, v]);
  }
  const mods = o.state.get('_modules');
  if (mods instanceof PyDict) for (const [k, v] of mods.entries) if (v instanceof PyObject) batchNormEps(v, `${prefix}${String(k)}.`, out, depth + 1);
  return out;
}

const ACCURACY_KEY = /(^|[_\-/ .])(acc|accuracy|acc1|acc@1|top1|top-1|prec1|prec@1)([_\-/ .]|$)|^(best_?)?(val_?|test_?|eval_?)?acc/i;
const NOT_ACCURACY = /loss|accum|step|epoch|lr|count|acc5|top5|prec5/i;

/**
 * Accuracies the checkpoint recorded about itself: numbers (Python floats, ints, numpy scalars,
 * 0-d tensors) under keys like `best_acc`, `acc1`, `accuracy`, `val_acc`, `best_prec1`, at most
 * three dicts deep. Model weights and optimizer state are not searched.
 */
export function recordedMetrics(root: PyValue): RecordedMetric[] {
  const out: RecordedMetric[] = [];
  const visit = (v: PyValue, path: string[], depth: number): void => {
    if (!(v instanceof PyDict) || depth > 3 || out.length >= 32) return;
    for (const [k, x] of v.entries) {
      if (typeof k !== 'string') continue;
      const p = [...path, k];
      if (ACCURACY_KEY.test(k) && !NOT_ACCURACY.test(k)) {
        const n = numberOf(x);
        if (n !== null && Number.isFinite(n)) out.push({ path: p.join('/'), value: n, fraction: n >= 0 && n <= 1 ? n : n > 1 && n <= 100 ? n / 100 : null });
      }
      if (x instanceof PyDict && !(x.size > 0 && [...x.entries].every(([, y]) => y instanceof TorchTensor))) visit(x, p, depth + 1);
    }
  };
  visit(root, [], 0);
  return out;
}

function numberOf(x: PyValue): number | null {
  if (typeof x === 'number') return x;
  if (x instanceof PyFloat) return x.value;
  const np = numpyScalarValue(x);
  if (typeof np === 'number') return np;
  if (typeof np === 'bigint') return Number(np);
  if (x instanceof TorchTensor && x.numel === 1 && x.storage && ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32'].includes(x.dtype.name)) {
    try {
      return toFloat64(readTensorBytes(x), x.dtype.name)[0] ?? null;
    } catch {
      return null;
    }
  }
  return null;
}
