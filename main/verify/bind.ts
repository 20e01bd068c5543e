/**
 * Binds the graph's initializers to checkpoint tensors by following the graph and comparing
 * values, never on an initializer's name: torch 2.x's dynamo exporter writes the BatchNorm-folded
 * weight of `conv1` under the name `conv1.weight`, so a name says nothing about a value. A binding
 * is used only when some checkpoint's value, or a value recomputed from it (bind-recipes.ts),
 * equals the graph's within the rounding of the graph's dtype; the same mapping then feeds every
 * checkpoint's run, so a checkpoint that differs from the others shows up in its results. In order:
 *
 * 1. copies: each float initializer against the checkpoint tensors with as many elements, as they
 *    are (or reshaped, or cast), transposed (2-D), or times one constant;
 * 2. folds, found from the node that consumes the initializer: Conv(x, W, B), ConvTranspose(x, W, B)
 *    (output channels on W's axis 1, per group), Gemm(x, W, C) with
 *    its transB, and MatMul(x, W) followed by Add(·, B), with W·γ/√(var+ε) and (b−μ)·γ/√(var+ε)+β
 *    recomputed for each candidate (Conv or Linear weight with that many output channels, BatchNorm
 *    with that many channels, ε), the bias first because it is small.
 *
 * Initializer names only order the candidates (the likeliest is tried first). An initializer left
 * unbound whose name is a checkpoint key is reported as unconfirmed and used only with `trustNames`.
 * Everything else stays a graph constant, with the reason.
 */
import type { BindingKind, BindingReport, InitializerBinding, UnreachedTensor } from '../../shared/verify.ts';
import { computeRecipe, join, numelOf, recipeKeys, recipeVia, sameShape, type Recipe } from './bind-recipes.ts';
import type { CheckpointWeights } from './checkpoint-weights.ts';
import type { Folded } from './fold-conv-bn.ts';
import { initializerBytes, type OnnxInitializer, type OnnxModel, type OnnxNode } from '../formats/onnx/onnx-model.ts';
import { FLOAT_DTYPES, fromFloat64, rounder, toFloat64 } from './tensor-values.ts';

export type { Recipe } from './bind-recipes.ts';

export interface RunWeights {
  label: string;
  weights: CheckpointWeights;
}

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
/** BatchNorm epsilons tried when the checkpoint does not say: torch's default, then common others. */
const COMMON_EPS = [1e-5, 1e-3, 1e-4, 1e-6];
/** Elements compared before a full recipe is computed: a cheap way to reject most candidates. */
const PROBES = 8;

function stripWrappers(name: string): string {
  for (let changed = true; changed; ) {
    changed = false;
    for (const w of WRAPPERS)
      if (name.startsWith(w) && name.length > w.length) {
        name = name.slice(w.length);
        changed = true;
      }
  }
  return name;
}

export function mangle(key: string): string {
  return key.replace(/[^A-Za-z0-9_]/g, '_');
}

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

/** A node that multiplies by a weight initializer: where its weight, bias and output channels are. */
interface WeightedNode {
  node: OnnxNode;
  weight: string;
  bias: string | null;
  channels: number;
  /** the graph holds the weight as in×out (Gemm transB=0, MatMul) */
  transpose: boolean;
  /** a ConvTranspose's groups: its weight is in × out/groups × k…, output channels on axis 1 */
  convTransposeGroups: number | null;
}

function weightedNodes(model: OnnxModel, inits: Map<string, OnnxInitializer>): WeightedNode[] {
  const consumers = new Map<string, OnnxNode[]>();
  for (const n of model.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const out: WeightedNode[] = [];
  for (const node of model.nodes) {
    const w = inits.get(node.inputs[1] ?? '');
    if (!w || node.domain) continue;
    const bias = inits.has(node.inputs[2] ?? '') ? node.inputs[2]! : null;
    if (node.opType === 'Conv' && w.dims.length >= 3)
      out.push({ node, weight: w.name, bias, channels: w.dims[0]!, transpose: false, convTransposeGroups: null });
    else if (node.opType === 'ConvTranspose' && w.dims.length >= 3) {
      const groups = node.attrs['group'] ?? 1;
      out.push({ node, weight: w.name, bias, channels: w.dims[1]! * groups, transpose: false, convTransposeGroups: groups });
    } else if (node.opType === 'Gemm' && w.dims.length === 2 && !node.attrs['transA']) {
      const transB = !!node.attrs['transB'];
      out.push({ node, weight: w.name, bias, channels: transB ? w.dims[0]! : w.dims[1]!, transpose: !transB, convTransposeGroups: null });
    } else if (node.opType === 'MatMul' && w.dims.length === 2) {
      // MatMul(x, Wᵀ) then Add(·, b): torch's Linear over a rank-3 input, or without the fused Gemm
      const add = (consumers.get(node.outputs[0] ?? '') ?? []).find((n) => n.opType === 'Add');
      const b = add?.inputs.find((i) => i !== node.outputs[0] && inits.get(i)?.numel === w.dims[1]);
      out.push({ node, weight: w.name, bias: b ?? null, channels: w.dims[1]!, transpose: true, convTransposeGroups: null });
    }
  }
  return out;
}

export function planBindings(model: OnnxModel, runs: RunWeights[], opts: BindOptions = {}): BindingPlan {
  const keys = [...new Set(runs.flatMap((r) => [...r.weights.tensors.keys()]))];
  const keyIndex = new Map(keys.map((k, i) => [k, i]));
  const has = (k: string): boolean => keyIndex.has(k);
  const shapeOf = (k: string): number[] | null => {
    for (const r of runs) {
      const t = r.weights.tensors.get(k);
      if (t) return t.shape;
    }
    return null;
  };
  const dtypeOf = (k: string): string | null => runs.map((r) => r.weights.tensors.get(k)?.dtype.name).find((d) => d !== undefined) ?? null;
  const floatKeys = keys.filter((k) => runs.some((r) => FLOAT_DTYPES.has(r.weights.tensors.get(k)?.dtype.name ?? '')));
  const byMangled = new Map<string, string[]>();
  for (const k of keys) byMangled.set(mangle(k), [...(byMangled.get(mangle(k)) ?? []), k]);
  /** The checkpoint key an initializer's name spells (wrappers removed, or torch.export's `p_`/`b_` placeholder names), if any. */
  const namedKey = (name: string): string | null => {
    const plain = stripWrappers(name);
    if (has(plain)) return plain;
    const m = /^[pbc]_(.+)$/.exec(name);
    const hits = m ? (byMangled.get(m[1]!) ?? []) : [];
    return hits.length === 1 ? hits[0]! : null;
  };

  // Nothing is cached across initializers: a model's worth of doubles would not fit for large models.
  const graphOf = (t: OnnxInitializer): Float64Array => toFloat64(initializerBytes(model, t), t.dtype);
  const make = (run: RunWeights, recipe: Recipe, init: OnnxInitializer): Folded | string => computeRecipe(run.weights, recipe, init);

  const planned: Planned[] = model.initializers.map((init) => ({
    init,
    info: { name: init.name, dtype: init.dtype, shape: init.dims, kind: 'constant' as BindingKind, used: false },
    recipe: null,
  }));
  const byName = new Map(planned.map((p) => [p.init.name, p]));
  const opOf = new Map<string, string>();
  for (const n of model.nodes) for (const i of n.inputs) if (byName.has(i) && !opOf.has(i)) opOf.set(i, n.opType);

  const within = (v: Folded, g: Float64Array, dtype: string): boolean => {
    const tol = ULPS * (EPSILON[dtype] ?? 0);
    for (let i = 0; i < g.length; i++) if (!(v.values[i] === g[i] || Math.abs(v.values[i]! - g[i]!) <= tol * v.scale[i]!)) return false;
    return true;
  };

  /** Confirms a recipe against the graph in every run; fills the binding's report. */
  const settle = (p: Planned, recipe: Recipe, kind: 'bound' | 'recomputed', note?: string): boolean => {
    const confirmedBy: string[] = [];
    const maxAbsDiff: Record<string, number> = {};
    const g = graphOf(p.init);
    for (const run of runs) {
      const v = make(run, recipe, p.init);
      if (typeof v === 'string') continue;
      let max = 0;
      for (let i = 0; i < g.length; i++) {
        const d = Math.abs(v.values[i]! - g[i]!);
        if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
      }
      maxAbsDiff[run.label] = max;
      if (within(v, g, p.init.dtype)) confirmedBy.push(run.label);
    }
    const confirmed = confirmedBy.length > 0;
    const from = recipeKeys(recipe, has);
    p.recipe = recipe;
    p.info = {
      ...p.info,
      kind: confirmed ? kind : 'unconfirmed',
      from,
      via: recipeVia(recipe, opOf.get(p.init.name) ?? null, shapeOf(from[0]!), dtypeOf(from[0]!), p.init),
      confirmedBy,
      maxAbsDiff,
      used: confirmed || !!opts.trustNames,
      ...(note
        ? { note }
        : !confirmed
          ? {
              note: `no checkpoint's ${from.length > 1 ? 'recomputed ' : ''}value matches the graph's${opts.trustNames ? '; used anyway (trustNames)' : '; left as the graph constant (pass trustNames to use it)'}`,
            }
          : {}),
    };
    return confirmed;
  };

  /** True when a recipe's values from `run` equal the graph's initializer within rounding. */
  const matches = (run: RunWeights, recipe: Recipe, p: Planned, g: Float64Array): boolean => {
    const v = make(run, recipe, p.init);
    return typeof v !== 'string' && within(v, g, p.init.dtype);
  };

  // 1. copies: same elements, possibly reshaped, cast, transposed or scaled
  const taken = new Set<string>();
  for (const p of planned) {
    if (!FLOAT_DTYPES.has(p.init.dtype)) continue;
    const hint = namedKey(p.init.name);
    if (p.init.numel < 2 && !hint) continue;
    const d = p.init.dims;
    const candidates = floatKeys.filter((k) => numelOf(shapeOf(k)!) === p.init.numel);
    if (!candidates.length) continue;
    const rank = (k: string): number => (k === hint ? 0 : taken.has(k) ? 3 : sameShape(shapeOf(k)!, d) ? 1 : 2);
    candidates.sort((a, b) => rank(a) - rank(b) || keyIndex.get(a)! - keyIndex.get(b)!);
    const g = graphOf(p.init);
    const probes = Array.from({ length: Math.min(PROBES, g.length) }, (_, i) => Math.floor((i * g.length) / Math.min(PROBES, g.length)));
    const found = findCopy(p, g, probes, candidates);
    if (!found) continue;
    const [recipe, others] = found;
    taken.add(recipe.key);
    settle(
      p,
      recipe,
      'bound',
      others.length
        ? `equal to ${others.length + 1} checkpoint tensors (${[recipe.key, ...others].slice(0, 3).join(', ')}${others.length > 2 ? ', ...' : ''}); ${recipe.key} is used`
        : undefined,
    );
  }

  /** The first copy recipe (plain, transposed, scaled) of a candidate that some run confirms, and other keys as good. */
  function findCopy(p: Planned, g: Float64Array, probes: number[], candidates: string[]): [Extract<Recipe, { kind: 'copy' }>, string[]] | null {
    const d = p.init.dims;
    const toGraph = rounder(p.init.dtype);
    for (const run of runs) {
      const hits: Extract<Recipe, { kind: 'copy' }>[] = [];
      for (const key of candidates) {
        const t = run.weights.tensors.get(key);
        if (!t || !FLOAT_DTYPES.has(t.dtype.name)) continue;
        const bytes = run.weights.bytes(key);
        const size = bytes.length / p.init.numel;
        const c = (i: number): number => toFloat64(bytes.subarray(i * size, (i + 1) * size), t.dtype.name)[0]!;
        const transposable = t.shape.length === 2 && d.length === 2 && t.shape[0] === d[1] && t.shape[1] === d[0];
        const at = (i: number, transpose: boolean): number => (transpose ? c((i % d[1]!) * d[0]! + Math.floor(i / d[1]!)) : c(i));
        for (const transpose of transposable ? [false, true] : [false]) {
          // the factor a constant-folded scaling applied, from the largest probed element
          const big = probes.reduce((best, i) => (Math.abs(at(i, transpose)) > Math.abs(at(best, transpose)) ? i : best), probes[0]!);
          const ratio = at(big, transpose) !== 0 ? Math.fround(g[big]! / toGraph(at(big, transpose))) : 1;
          for (const factor of ratio !== 1 && Number.isFinite(ratio) && ratio !== 0 ? [1, ratio] : [1]) {
            const near = (i: number): boolean => {
              const x = factor === 1 ? toGraph(at(i, transpose)) : toGraph(toGraph(at(i, transpose)) * factor);
              return x === g[i] || Math.abs(x - g[i]!) <= ULPS * (EPSILON[p.init.dtype] ?? 0) * Math.abs(x);
            };
            if (!probes.every(near)) continue;
            const recipe = { kind: 'copy' as const, key, transpose, factor };
            if (matches(run, recipe, p, g)) hits.push(recipe);
          }
        }
        if (hits.length && hits[0]!.key === namedKey(p.init.name)) break;
      }
      if (hits.length) return [hits[0]!, [...new Set(hits.slice(1).map((h) => h.key))].filter((k) => k !== hits[0]!.key)];
    }
    return null;
  }

  // 2. folds, found from the nodes that consume the initializers
  const bnGroups = keys
    .filter((k) => k.endsWith('running_mean'))
    .map((k) => k.slice(0, -'running_mean'.length).replace(/\.$/, ''))
    .filter((q) => has(join(q, 'running_var')));
  const epsFor = (q: string): number[] => {
    const module = runs.map((r) => r.weights.bnEps.get(q)).find((e) => e !== undefined);
    return [...new Set([opts.bnEps, module, ...COMMON_EPS].filter((e): e is number => e !== undefined))];
  };
  const bnEpsUsed: Record<string, number> = {};
  const weighted = weightedNodes(model, new Map(model.initializers.map((t) => [t.name, t])));
  /** output channels of the node an initializer weights or biases */
  const channelsOf = new Map(weighted.flatMap((wn) => [[wn.weight, wn.channels] as const, ...(wn.bias ? [[wn.bias, wn.channels] as const] : [])]));
  for (const wn of weighted) {
    const w = byName.get(wn.weight)!;
    const b = wn.bias ? byName.get(wn.bias)! : null;
    if (w.recipe || (b && b.recipe) || !FLOAT_DTYPES.has(w.init.dtype)) continue;
    const convShape = wn.transpose ? [w.init.dims[1]!, w.init.dims[0]!] : w.init.dims;
    const convs = orderConvs(
      wn,
      floatKeys.filter((k) => /(^|\.)weight$/.test(k) && sameShape(shapeOf(k)!, convShape)).map((k) => k.slice(0, -'weight'.length).replace(/\.$/, '')),
    );
    const bns = bnGroups.filter((q) =>
      ['running_mean', 'running_var', 'weight', 'bias'].every((leaf) => !has(join(q, leaf)) || numelOf(shapeOf(join(q, leaf))!) === wn.channels),
    );
    if (!convs.length || !bns.length) continue;
    const found = searchFold(wn, w, b, convs, bns);
    if (found) bnEpsUsed[found.bn] = found.eps;
  }

  function orderConvs(wn: WeightedNode, convs: string[]): string[] {
    const named = namedKey(wn.weight);
    const path = named?.replace(/\.?weight$/, '') ?? scopePath(wn.node.name);
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

  /** The first (conv, BatchNorm, eps) whose recomputed bias, then weight, equal the graph's in some run. */
  function searchFold(wn: WeightedNode, w: Planned, b: Planned | null, convs: string[], bns: string[]): { bn: string; eps: number } | null {
    const gw = graphOf(w.init);
    const gb = b ? graphOf(b.init) : null;
    for (const run of runs) {
      for (const conv of convs) {
        const convBias = has(join(conv, 'bias')) ? join(conv, 'bias') : null;
        for (const bn of orderBns(conv, bns)) {
          for (const eps of epsFor(bn)) {
            const groups = wn.convTransposeGroups;
            const bias: Recipe = { kind: 'fold-bias', conv, convBias, bn, eps, transpose: false, convTransposeGroups: groups };
            const weight: Recipe = { kind: 'fold-weight', conv, convBias, bn, eps, transpose: wn.transpose, convTransposeGroups: groups };
            if ((b && !matches(run, bias, b, gb!)) || !matches(run, weight, w, gw)) continue;
            settle(w, weight, 'recomputed');
            if (b) settle(b, bias, 'recomputed');
            return { bn, eps };
          }
        }
      }
    }
    return null;
  }

  // 3. names no value confirmed: reported, used only with trustNames
  for (const p of planned) {
    if (p.recipe || !FLOAT_DTYPES.has(p.init.dtype)) continue;
    const key = namedKey(p.init.name);
    if (!key) continue;
    const via = has(stripWrappers(p.init.name)) ? 'name' : 'dynamo name';
    const shape = shapeOf(key)!;
    if (!sameShape(shape, p.init.dims)) {
      p.info = {
        ...p.info,
        kind: 'unconfirmed',
        from: [key],
        via,
        used: false,
        note: `checkpoint ${key} is [${shape.join(', ')}], the graph wants [${p.init.dims.join(', ')}]`,
      };
      continue;
    }
    settle(p, { kind: 'copy', key, transpose: false, factor: 1 }, 'bound');
    p.info.via = via;
  }
  for (const p of planned) {
    if (p.info.kind !== 'constant') continue;
    p.info.note = !FLOAT_DTYPES.has(p.init.dtype)
      ? `${p.init.dtype} constant (a shape, axis or index), not a weight`
      : p.init.numel < 2
        ? 'a scalar constant of the graph'
        : 'no checkpoint tensor equals it, transposed, reshaped, scaled or folded with a BatchNorm';
  }

  // report and replacement bytes
  const replacements = new Map<string, Map<string, Uint8Array>>();
  const unusedTensors: Record<string, string[]> = {};
  const unreached: Record<string, UnreachedTensor[]> = {};
  const missingTensors: Record<string, string[]> = {};
  const parameterCoverage: Record<string, number> = {};
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
    unreached[run.label] = unusedTensors[run.label]!.map((key) => ({ key, reason: whyUnreached(key, run) }));
    missingTensors[run.label] = missing;
    // parameters: float tensors other than BatchNorm's batch counter, by elements
    const params = [...run.weights.tensors.entries()].filter(([k, t]) => FLOAT_DTYPES.has(t.dtype.name) && !k.endsWith('num_batches_tracked'));
    const all = params.reduce((a, [, t]) => a + numelOf(t.shape), 0);
    const reached = params.filter(([k]) => usedKeys.has(k)).reduce((a, [, t]) => a + numelOf(t.shape), 0);
    parameterCoverage[run.label] = all ? reached / all : 0;
  }

  function whyUnreached(key: string, run: RunWeights): string {
    const t = run.weights.tensors.get(key)!;
    if (key.endsWith('num_batches_tracked')) return "BatchNorm's batch counter; inference does not read it";
    if (!FLOAT_DTYPES.has(t.dtype.name)) return `a ${t.dtype.name} tensor; the graph's weights are floats`;
    const near = planned.find((p) => p.info.from?.includes(key) && !p.info.used);
    if (near) return `${near.init.name} fits it but its values differ from every checkpoint's (unconfirmed)`;
    const n = numelOf(t.shape);
    const open = planned.find((p) => !p.info.used && FLOAT_DTYPES.has(p.init.dtype) && (p.init.numel === n || channelsOf.get(p.init.name) === n));
    if (open)
      return `${open.init.name} has room for it, but nothing computed from this checkpoint equals it: this tensor (or one folded with it) differs from the weights the graph was exported from`;
    return 'no graph weight has its size or a size derived from it: the graph does not use it (a training-only head?)';
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
      unreached,
      missingTensors,
      coverage: total ? covered / total : 0,
      parameterCoverage,
      bnEps: bnEpsUsed,
    },
  };
}
