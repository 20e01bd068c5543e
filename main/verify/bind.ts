/**
 * Binds the graph's initializers to checkpoint tensors, and never on a name alone: a binding is
 * used only when some checkpoint's value equals the graph's (within the rounding of the graph's
 * dtype), which proves the mapping; the same mapping then feeds every checkpoint's run, so a
 * checkpoint that differs from the others shows up in its results. In order:
 *
 * 1. by name: initializer name = canonical key (wrapper prefixes `module.`/`_orig_mod.` removed on
 *    both sides), or the placeholder names of torch.export / the dynamo exporter (`p_conv1_weight`,
 *    `b_bn1_running_mean`: the key with every character outside [A-Za-z0-9_] made `_`);
 * 2. folded Conv+BatchNorm (`onnx::Conv_NN` from torch's eval export): recomputed from the conv's
 *    and the BatchNorm's tensors, found by following the Conv node (its scope name, e.g.
 *    `/layer1/layer1.0/conv1/Conv`, names the conv; the BatchNorm is searched among those with as
 *    many channels, nearest after the conv in state-dict order first);
 * 3. by value: another unnamed float initializer that equals exactly one checkpoint tensor.
 *
 * Everything else stays a graph constant. Name matches whose value no checkpoint confirms are
 * reported as unconfirmed and used only with `trustNames`.
 */
import type { BindingKind, BindingReport, InitializerBinding } from '../../shared/verify.ts';
import type { CheckpointWeights } from './checkpoint-weights.ts';
import { foldedBias, foldedWeight, type Folded, type FoldInputs } from './fold-conv-bn.ts';
import { initializerBytes, type OnnxInitializer, type OnnxModel, type OnnxNode } from './onnx-model.ts';
import { castBytes, FLOAT_DTYPES, fromFloat64, rounder, toFloat64 } from './tensor-values.ts';

export interface RunWeights {
  label: string;
  weights: CheckpointWeights;
}

export type Recipe =
  | { kind: 'copy'; key: string }
  | { kind: 'fold-weight' | 'fold-bias'; conv: string; convBias: string | null; bn: string; eps: number };

interface Planned {
  init: OnnxInitializer;
  info: InitializerBinding;
  recipe: Recipe | null;
}

export interface BindingPlan {
  planned: Planned[];
  report: BindingReport;
  /** per run label: initializer name → the bytes that replace it */
  replacements: Map<string, Map<string, Uint8Array>>;
}

export interface BindOptions {
  trustNames?: boolean;
  bnEps?: number;
}

const WRAPPERS = ['module.', '_orig_mod.'];

/** ULPs of the graph's dtype allowed between a checkpoint-derived value and the graph's. */
const ULPS = 8;
const EPSILON: Record<string, number> = { float32: 2 ** -24, float64: 2 ** -53, float16: 2 ** -11, bfloat16: 2 ** -8 };

function stripWrappers(name: string): string {
  for (let changed = true; changed; ) {
    changed = false;
    for (const w of WRAPPERS) if (name.startsWith(w) && name.length > w.length) {
      name = name.slice(w.length);
      changed = true;
    }
  }
  return name;
}

export function mangle(key: string): string {
  return key.replace(/[^A-Za-z0-9_]/g, '_');
}

function join(prefix: string, leaf: string): string {
  return prefix ? `${prefix}.${leaf}` : leaf;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The module path a Conv node's scope name gives: torch ≥ 1.13 names nodes `/a/a.0/conv1/Conv`,
 * each segment the module's name without its parent's (torch/onnx/utils.py `_unqualified_variable_name`
 * keeps the last non-numeric atom and the numeric atoms after it), so `a`, `a.0`, `conv1` → `a.0.conv1`.
 */
export function scopePath(nodeName: string): string | null {
  const segs = nodeName.split('/').filter(Boolean);
  if (segs.length < 2) return null;
  const full: string[] = [];
  for (const seg of segs.slice(0, -1)) {
    const atoms = seg.split('.');
    if (atoms.length > 1 && full[full.length - 1] === atoms[0]) full.push(...atoms.slice(1));
    else full.push(...atoms);
  }
  return full.join('.');
}

export function planBindings(model: OnnxModel, runs: RunWeights[], opts: BindOptions = {}): BindingPlan {
  const keys = [...new Set(runs.flatMap((r) => [...r.weights.tensors.keys()]))];
  const keyIndex = new Map(keys.map((k, i) => [k, i]));
  const shapeOf = (k: string): number[] | null => {
    for (const r of runs) {
      const t = r.weights.tensors.get(k);
      if (t) return t.shape;
    }
    return null;
  };
  const isFloatKey = (k: string): boolean => runs.some((r) => FLOAT_DTYPES.has(r.weights.tensors.get(k)?.dtype.name ?? ''));
  const byMangled = new Map<string, string[]>();
  for (const k of keys) byMangled.set(mangle(k), [...(byMangled.get(mangle(k)) ?? []), k]);

  // Nothing is cached across initializers: a model's worth of doubles would not fit for large models.
  const graphOf = (t: OnnxInitializer): Float64Array => toFloat64(initializerBytes(model, t), t.dtype);
  /** The recipe's values for one run, in the graph's dtype, or a reason it cannot be made there. */
  const make = (run: RunWeights, recipe: Recipe, init: OnnxInitializer): Folded | string => compute(run.weights, recipe, init);

  const planned: Planned[] = model.initializers.map((init) => ({
    init,
    info: { name: init.name, dtype: init.dtype, shape: init.dims, kind: 'constant' as BindingKind, used: false },
    recipe: null,
  }));
  const byName = new Map(planned.map((p) => [p.init.name, p]));

  /** Confirms a recipe against the graph in every run; fills the binding's report. */
  const settle = (p: Planned, recipe: Recipe, kind: 'bound' | 'recomputed', via: string, from: string[], note?: string): boolean => {
    const confirmedBy: string[] = [];
    const maxAbsDiff: Record<string, number> = {};
    const tol = ULPS * (EPSILON[p.init.dtype] ?? 0);
    const g = graphOf(p.init);
    for (const run of runs) {
      const v = make(run, recipe, p.init);
      if (typeof v === 'string') continue;
      let max = 0;
      let ok = true;
      for (let i = 0; i < g.length; i++) {
        const d = Math.abs(v.values[i]! - g[i]!);
        if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
        if (!(d <= tol * v.scale[i]!) && !(v.values[i] === g[i])) ok = false;
      }
      maxAbsDiff[run.label] = max;
      if (ok) confirmedBy.push(run.label);
    }
    const confirmed = confirmedBy.length > 0;
    p.recipe = recipe;
    p.info = {
      ...p.info,
      kind: confirmed ? kind : 'unconfirmed',
      from,
      via,
      confirmedBy,
      maxAbsDiff,
      used: confirmed || !!opts.trustNames,
      ...(note ? { note } : !confirmed ? { note: `no checkpoint's ${from.length > 1 ? 'recomputed ' : ''}value matches the graph's${opts.trustNames ? '; used anyway (trustNames)' : '; left as the graph constant (pass trustNames to use it)'}` } : {}),
    };
    return confirmed;
  };

  // 1. names
  for (const p of planned) {
    if (!FLOAT_DTYPES.has(p.init.dtype)) continue;
    const name = stripWrappers(p.init.name);
    let key: string | undefined = keyIndex.has(name) ? name : undefined;
    let via = 'name';
    if (!key) {
      const m = /^[pbc]_(.+)$/.exec(p.init.name);
      const hits = m ? byMangled.get(m[1]!) ?? [] : [];
      if (hits.length === 1) {
        key = hits[0];
        via = 'dynamo name';
      }
    }
    if (!key) continue;
    const shape = shapeOf(key)!;
    if (!sameShape(shape, p.init.dims)) {
      p.info = { ...p.info, kind: 'unconfirmed', from: [key], via, used: false, note: `checkpoint ${key} is [${shape.join(', ')}], the graph wants [${p.init.dims.join(', ')}]` };
      continue;
    }
    settle(p, { kind: 'copy', key }, 'bound', via, [key]);
  }

  // 2. folded Conv+BatchNorm
  const bnGroups = keys.filter((k) => k.endsWith('running_mean')).map((k) => k.slice(0, -'running_mean'.length).replace(/\.$/, '')).filter((q) => keyIndex.has(join(q, 'running_var')));
  const epsFor = (q: string): number[] => {
    const module = runs.map((r) => r.weights.bnEps.get(q)).find((e) => e !== undefined);
    return [...new Set([opts.bnEps, module, 1e-5, 1e-3].filter((e): e is number => e !== undefined))];
  };
  const bnEpsUsed: Record<string, number> = {};
  for (const node of model.nodes) {
    if (node.opType !== 'Conv' || node.inputs.length < 3) continue;
    const w = byName.get(node.inputs[1]!);
    const b = byName.get(node.inputs[2]!);
    if (!w || !b || w.recipe || b.recipe || !FLOAT_DTYPES.has(w.init.dtype) || w.init.dims.length < 3) continue;
    const out = w.init.dims[0]!;
    if (!sameShape(b.init.dims, [out])) continue;
    const convs = orderConvs(node, keys.filter((k) => /(^|\.)weight$/.test(k) && isFloatKey(k) && sameShape(shapeOf(k)!, w.init.dims)).map((k) => k.slice(0, -'weight'.length).replace(/\.$/, '')));
    const bns = bnGroups.filter((q) => ['running_mean', 'running_var', 'weight', 'bias'].every((leaf) => !keyIndex.has(join(q, leaf)) || sameShape(shapeOf(join(q, leaf))!, [out])));
    if (!convs.length || !bns.length) continue;
    const found = searchFold(w, b, convs, bns);
    if (found) {
      bnEpsUsed[found.bn] = found.eps;
      continue;
    }
    // Nothing confirms: offer the likeliest pair, reported as unconfirmed.
    const conv = convs.find((c) => c === scopePath(node.name));
    if (conv !== undefined) {
      const bn = orderBns(conv, bns)[0]!;
      const eps = epsFor(bn)[0]!;
      const convBias = keyIndex.has(join(conv, 'bias')) ? join(conv, 'bias') : null;
      const from = foldKeys(conv, convBias, bn);
      settle(w, { kind: 'fold-weight', conv, convBias, bn, eps }, 'recomputed', 'conv+bn fold', from);
      settle(b, { kind: 'fold-bias', conv, convBias, bn, eps }, 'recomputed', 'conv+bn fold', from);
    }
  }

  function foldKeys(conv: string, convBias: string | null, bn: string): string[] {
    return [join(conv, 'weight'), ...(convBias ? [convBias] : []), ...['weight', 'bias', 'running_mean', 'running_var'].map((l) => join(bn, l)).filter((k) => keyIndex.has(k))];
  }

  function orderConvs(node: OnnxNode, convs: string[]): string[] {
    const path = scopePath(node.name);
    const last = path?.split('.').pop();
    const rank = (c: string): number => (c === path ? 0 : last && (c === last || c.endsWith(`.${last}`)) ? 1 : 2);
    return [...convs].sort((a, b) => rank(a) - rank(b) || keyIndex.get(join(a, 'weight'))! - keyIndex.get(join(b, 'weight'))!);
  }

  function orderBns(conv: string, bns: string[]): string[] {
    const at = keyIndex.get(join(conv, 'weight'))!;
    const pos = (q: string): number => {
      const i = keyIndex.get(join(q, 'running_mean'))!;
      return i > at ? i - at : keys.length + at - i;
    };
    return [...bns].sort((a, b) => pos(a) - pos(b));
  }

  /** True when a recipe's values from `run` equal the graph's initializer within rounding. */
  function matches(run: RunWeights, recipe: Recipe, p: Planned): boolean {
    const v = make(run, recipe, p.init);
    if (typeof v === 'string') return false;
    const g = graphOf(p.init);
    const tol = ULPS * (EPSILON[p.init.dtype] ?? 0);
    return v.values.every((x, i) => x === g[i] || Math.abs(x - g[i]!) <= tol * v.scale[i]!);
  }

  /** The first (conv, BatchNorm, eps) whose recomputed bias, then weight, equal the graph's in some run. */
  function searchFold(w: Planned, b: Planned, convs: string[], bns: string[]): { bn: string; eps: number } | null {
    for (const run of runs) {
      for (const conv of convs) {
        const convBias = keyIndex.has(join(conv, 'bias')) ? join(conv, 'bias') : null;
        for (const bn of orderBns(conv, bns)) {
          for (const eps of epsFor(bn)) {
            const bias: Recipe = { kind: 'fold-bias', conv, convBias, bn, eps };
            const weight: Recipe = { kind: 'fold-weight', conv, convBias, bn, eps };
            if (!matches(run, bias, b) || !matches(run, weight, w)) continue;
            const from = foldKeys(conv, convBias, bn);
            settle(w, weight, 'recomputed', 'conv+bn fold', from);
            settle(b, bias, 'recomputed', 'conv+bn fold', from);
            return { bn, eps };
          }
        }
      }
    }
    return null;
  }

  // 3. values: unnamed float initializers equal to exactly one checkpoint tensor
  for (const p of planned) {
    if (p.recipe || p.info.kind !== 'constant' || !FLOAT_DTYPES.has(p.init.dtype) || p.init.numel < 2) continue;
    const g = initializerBytes(model, p.init);
    for (const run of runs) {
      const hits = keys.filter((k) => {
        const t = run.weights.tensors.get(k);
        if (!t || !FLOAT_DTYPES.has(t.dtype.name) || !sameShape(t.shape, p.init.dims)) return false;
        const c = castBytes(run.weights.bytes(k), t.dtype.name, p.init.dtype);
        return Buffer.from(c.buffer, c.byteOffset, c.byteLength).equals(Buffer.from(g.buffer, g.byteOffset, g.byteLength));
      });
      if (!hits.length) continue;
      settle(p, { kind: 'copy', key: hits[0]! }, 'bound', 'value', [hits[0]!], hits.length > 1 ? `equal to ${hits.length} checkpoint tensors (${hits.slice(0, 3).join(', ')}${hits.length > 3 ? ', ...' : ''}); the first is used` : undefined);
      break;
    }
  }

  // report and replacement bytes
  const replacements = new Map<string, Map<string, Uint8Array>>();
  const unusedTensors: Record<string, string[]> = {};
  const missingTensors: Record<string, string[]> = {};
  for (const run of runs) {
    const rep = new Map<string, Uint8Array>();
    const usedKeys = new Set<string>();
    const missing: string[] = [];
    for (const p of planned) {
      if (!p.recipe || !p.info.used) continue;
      const v = make(run, p.recipe, p.init);
      if (typeof v === 'string') {
        missing.push(`${p.init.name}: ${v}`);
        continue;
      }
      rep.set(p.init.name, fromFloat64(v.values, p.init.dtype));
      for (const k of p.info.from ?? []) usedKeys.add(k);
    }
    replacements.set(run.label, rep);
    unusedTensors[run.label] = [...run.weights.tensors.keys()].filter((k) => !usedKeys.has(k));
    missingTensors[run.label] = missing;
  }
  const infos = planned.map((p) => p.info);
  const count = (k: BindingKind): number => infos.filter((i) => i.kind === k).length;
  const floats = planned.filter((p) => FLOAT_DTYPES.has(p.init.dtype));
  const total = floats.reduce((a, p) => a + p.init.numel, 0);
  const covered = floats.filter((p) => p.info.used).reduce((a, p) => a + p.init.numel, 0);
  return {
    planned,
    replacements,
    report: {
      initializers: infos,
      counts: { bound: count('bound'), recomputed: count('recomputed'), unconfirmed: count('unconfirmed'), constants: count('constant') },
      unusedTensors,
      missingTensors,
      coverage: total ? covered / total : 0,
      bnEps: bnEpsUsed,
    },
  };
}

/** Values of a recipe from one checkpoint, rounded to the graph's dtype; a string says why it cannot be made. */
function compute(w: CheckpointWeights, recipe: Recipe, init: OnnxInitializer): Folded | string {
  const get = (key: string, shape: number[] | null): { v: Float64Array; dtype: string } | string => {
    const t = w.tensors.get(key);
    if (!t) return `the checkpoint has no ${key}`;
    if (!FLOAT_DTYPES.has(t.dtype.name)) return `${key} is ${t.dtype.name}, not a float tensor`;
    if (shape && !sameShape(t.shape, shape)) return `${key} is [${t.shape.join(', ')}], the graph needs [${shape.join(', ')}]`;
    return { v: toFloat64(w.bytes(key), t.dtype.name), dtype: t.dtype.name };
  };
  const toGraph = rounder(init.dtype);
  if (recipe.kind === 'copy') {
    const t = get(recipe.key, init.dims);
    if (typeof t === 'string') return t;
    const values = t.v.map(toGraph);
    return { values, scale: values.map(Math.abs) };
  }
  const channels = init.dims[0]!;
  const weight = get(join(recipe.conv, 'weight'), recipe.kind === 'fold-weight' ? init.dims : null);
  if (typeof weight === 'string') return weight;
  if (weight.v.length % channels || (recipe.kind === 'fold-bias' && w.tensors.get(join(recipe.conv, 'weight'))!.shape[0] !== channels)) return `${recipe.conv}.weight does not have ${channels} output channels`;
  const opt = (key: string | null): Float64Array | null | string => {
    if (key === null || !w.tensors.has(key)) return null;
    const r = get(key, [channels]);
    return typeof r === 'string' ? r : r.v;
  };
  const need = (key: string): Float64Array | string => {
    const r = get(key, [channels]);
    return typeof r === 'string' ? r : r.v;
  };
  const convBias = opt(recipe.convBias);
  const gamma = opt(join(recipe.bn, 'weight'));
  const beta = opt(join(recipe.bn, 'bias'));
  const mean = need(join(recipe.bn, 'running_mean'));
  const variance = need(join(recipe.bn, 'running_var'));
  for (const x of [convBias, gamma, beta, mean, variance]) if (typeof x === 'string') return x;
  if (recipe.convBias && convBias === null) return `the checkpoint has no ${recipe.convBias}`;
  const f: FoldInputs = {
    weight: weight.v, convBias: convBias as Float64Array | null, gamma: gamma as Float64Array | null, beta: beta as Float64Array | null,
    mean: mean as Float64Array, variance: variance as Float64Array, eps: recipe.eps, dtype: weight.dtype,
  };
  const folded = recipe.kind === 'fold-weight' ? foldedWeight(f) : foldedBias(f);
  return { values: folded.values.map(toGraph), scale: folded.scale };
}
