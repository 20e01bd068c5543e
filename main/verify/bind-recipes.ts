/**
 * How a graph initializer is made from checkpoint tensors, and the values it gives. Torch's
 * exporters hand the graph derived values under names that may be a parameter's own:
 *
 * - `copy`: a tensor as it is, or reshaped (a bias folded to 1×C×1×1), cast to the graph's dtype
 *   (a constant-folded `.double()`), transposed (torch's exporters write a Linear without bias,
 *   or one over a rank-3 input, as `MatMul(x, Wᵀ)` with Wᵀ constant-folded: torch/onnx/symbolic_opset9.py
 *   `linear` → `matmul(input, t(weight))`), and/or multiplied by a constant (`w * 0.5` folded);
 * - `fold-weight` / `fold-bias`: an eval-mode BatchNorm folded into the Conv or Linear before it, by
 *   torch's legacy exporter (torch/csrc/jit/passes/onnx/eval_peephole.cpp `fuseConvBatchNorm`, Conv only)
 *   or by onnxscript's optimizer that `torch.onnx.export(dynamo=True)` runs
 *   (onnxscript/rewriter/rules/common/_fuse_batchnorm.py: Conv, ConvTranspose and Gemm; a Gemm with
 *   transB=0 holds the weight transposed, scaled along axis 1; a ConvTranspose weight is
 *   in × out/groups × k…, scaled along axis 1 within each group, `FuseBatchNormIntoConvTranspose._scale_weights`;
 *   the legacy exporter leaves ConvTranspose's BatchNormalization in the graph). Both compute W·γ/√(var+ε) and (b−μ)·γ/√(var+ε)+β
 *   in the parameters' dtype; a missing bias is zeros (onnxscript) or left out (torch), the same value.
 */
import type { CheckpointWeights } from './checkpoint-weights.ts';
import { convTransposeChannel, foldedBias, foldedWeight, type Folded, type FoldInputs } from './fold-conv-bn.ts';
import type { OnnxInitializer } from '../formats/onnx/onnx-model.ts';
import { FLOAT_DTYPES, rounder, toFloat64 } from './tensor-values.ts';

export type Recipe =
  | { kind: 'copy'; key: string; transpose: boolean; factor: number }
  | {
      kind: 'fold-weight' | 'fold-bias';
      conv: string;
      convBias: string | null;
      bn: string;
      eps: number;
      transpose: boolean;
      /** the folded node is a ConvTranspose with this many groups (null: Conv, Gemm or MatMul) */
      convTransposeGroups: number | null;
    };

export const join = (prefix: string, leaf: string): string => (prefix ? `${prefix}.${leaf}` : leaf);
export const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The keys a recipe reads. */
export function recipeKeys(r: Recipe, has: (key: string) => boolean): string[] {
  if (r.kind === 'copy') return [r.key];
  return [
    join(r.conv, 'weight'),
    ...(r.convBias ? [r.convBias] : []),
    ...['weight', 'bias', 'running_mean', 'running_var'].map((l) => join(r.bn, l)).filter(has),
  ];
}

/** How the binding describes a recipe (`via` in the report): what was done to the checkpoint's tensor. */
export function recipeVia(r: Recipe, opType: string | null, keyShape: number[] | null, keyDtype: string | null, init: OnnxInitializer): string {
  const parts: string[] = [];
  if (r.kind !== 'copy') parts.push(`${opType === 'Conv' ? 'conv' : opType === 'ConvTranspose' ? 'conv-transpose' : 'linear'}+bn fold`);
  if (r.transpose) parts.push('transposed');
  else if (r.kind === 'copy' && keyShape && !sameShape(keyShape, init.dims)) parts.push(`reshaped to [${init.dims.join(', ')}]`);
  if (r.kind === 'copy' && r.factor !== 1) parts.push(`scaled ×${r.factor}`);
  if (keyDtype && keyDtype !== init.dtype) parts.push(`cast to ${init.dtype}`);
  return parts.length ? parts.join(', ') : 'value';
}

/** Rows×cols → cols×rows. */
function transpose2d(v: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
  return out;
}

/** Values of a recipe from one checkpoint, rounded to the graph's dtype; a string says why it cannot be made. */
export function computeRecipe(w: CheckpointWeights, recipe: Recipe, init: OnnxInitializer): Folded | string {
  const get = (key: string): { v: Float64Array; dtype: string; shape: number[] } | string => {
    const t = w.tensors.get(key);
    if (!t) return `the checkpoint has no ${key}`;
    if (!FLOAT_DTYPES.has(t.dtype.name)) return `${key} is ${t.dtype.name}, not a float tensor`;
    return { v: toFloat64(w.bytes(key), t.dtype.name), dtype: t.dtype.name, shape: t.shape };
  };
  const toGraph = rounder(init.dtype);
  const want = (shape: number[], transpose: boolean): string | null => {
    const graph = transpose ? [init.dims[1]!, init.dims[0]!] : init.dims;
    if (transpose ? shape.length === 2 && sameShape(shape, graph) : numelOf(shape) === init.numel) return null;
    return `[${shape.join(', ')}] does not give the graph's [${init.dims.join(', ')}]${transpose ? ' transposed' : ''}`;
  };
  if (recipe.kind === 'copy') {
    const t = get(recipe.key);
    if (typeof t === 'string') return t;
    const bad = want(t.shape, recipe.transpose);
    if (bad) return `${recipe.key} is ${bad}`;
    let values = recipe.transpose ? transpose2d(t.v, t.shape[0]!, t.shape[1]!) : t.v;
    values = recipe.factor === 1 ? values.map(toGraph) : values.map((x) => toGraph(toGraph(x) * recipe.factor));
    return { values, scale: values.map(Math.abs) };
  }
  const weight = get(join(recipe.conv, 'weight'));
  if (typeof weight === 'string') return weight;
  const groups = recipe.convTransposeGroups;
  const channels = groups ? weight.shape[1]! * groups : weight.shape[0]!;
  if (groups && weight.shape[0]! % groups) return `${recipe.conv}.weight has ${weight.shape[0]} input channels, not a multiple of ${groups} groups`;
  if (recipe.kind === 'fold-weight') {
    const bad = want(weight.shape, recipe.transpose);
    if (bad) return `${recipe.conv}.weight is ${bad}`;
  } else if (init.numel !== channels) return `${recipe.conv}.weight has ${channels} output channels, the graph's bias ${init.numel}`;
  const vector = (key: string | null, required: boolean): Float64Array | null | string => {
    if (key === null || (!required && !w.tensors.has(key))) return null;
    const r = get(key);
    if (typeof r === 'string') return r;
    return r.v.length === channels ? r.v : `${key} has ${r.v.length} elements, not ${channels}`;
  };
  const convBias = vector(recipe.convBias, true);
  const gamma = vector(join(recipe.bn, 'weight'), false);
  const beta = vector(join(recipe.bn, 'bias'), false);
  const mean = vector(join(recipe.bn, 'running_mean'), true);
  const variance = vector(join(recipe.bn, 'running_var'), true);
  for (const x of [convBias, gamma, beta, mean, variance]) if (typeof x === 'string') return x;
  const f: FoldInputs = {
    weight: weight.v,
    convBias: convBias as Float64Array | null,
    gamma: gamma as Float64Array | null,
    beta: beta as Float64Array | null,
    mean: mean as Float64Array,
    variance: variance as Float64Array,
    eps: recipe.eps,
    dtype: weight.dtype,
  };
  const folded = recipe.kind === 'fold-weight' ? foldedWeight(f, groups ? convTransposeChannel(weight.shape, groups) : undefined) : foldedBias(f);
  if (recipe.kind === 'fold-weight' && recipe.transpose) {
    const [rows, cols] = [weight.shape[0]!, weight.shape[1]!];
    return { values: transpose2d(folded.values, rows, cols).map(toGraph), scale: transpose2d(folded.scale, rows, cols) };
  }
  return { values: folded.values.map(toGraph), scale: folded.scale };
}
