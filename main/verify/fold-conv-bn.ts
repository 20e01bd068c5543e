/**
 * Recomputes the weights torch's ONNX export writes when it folds an eval-mode BatchNormalization
 * into the Conv before it (torch/csrc/jit/passes/onnx/eval_peephole.cpp, `fuseConvBatchNorm`; the
 * result is named `onnx::Conv_NN`). In the parameters' dtype, one rounding per step, in torch's order:
 *
 *   var' = var + eps;  std = sqrt(var');  scale = gamma / std
 *   W'[o] = W[o] * scale[o]
 *   b' = ((b - mean) * scale) + beta          when the conv has a bias
 *   b' = beta - (mean * scale)                when it has none
 *
 * torch adds the epsilon as a float32 scalar (a wrapped double is cast to the tensor's dtype).
 * +, -, *, / and sqrt computed in double and then rounded to float32 are exactly IEEE float32
 * results, so float32 parameters reproduce torch's folded values bit for bit.
 */
import { rounder } from './tensor-values.ts';

export interface FoldInputs {
  /** conv weight, out-channels first (a ConvTranspose's: see convTransposeChannel) */
  weight: Float64Array;
  convBias: Float64Array | null;
  /** BatchNorm weight and bias (null for affine=False: ones and zeros, as torch's export uses) */
  gamma: Float64Array | null;
  beta: Float64Array | null;
  mean: Float64Array;
  variance: Float64Array;
  eps: number;
  /** the dtype the parameters are in, whose rounding is emulated */
  dtype: string;
}

export interface Folded {
  values: Float64Array;
  /** per element, the magnitude of the terms that made it: the yardstick for "equal within rounding" */
  scale: Float64Array;
}

function bnScale(f: FoldInputs): Float64Array {
  const r = rounder(f.dtype);
  const eps = r(f.eps);
  const out = new Float64Array(f.mean.length);
  for (let o = 0; o < out.length; o++) out[o] = r((f.gamma ? f.gamma[o]! : 1) / r(Math.sqrt(r(f.variance[o]! + eps))));
  return out;
}

/**
 * The output channel of each element of a ConvTranspose weight, in × out/groups × k…: element
 * ((g·in/groups + i)·out/groups + o)·k + j belongs to channel g·out/groups + o.
 */
export function convTransposeChannel(shape: readonly number[], groups: number): (index: number) => number {
  const outPerGroup = shape[1]!;
  const inPerGroup = shape[0]! / groups;
  const kernel = shape.slice(2).reduce((a, b) => a * b, 1);
  return (index) => {
    const row = Math.floor(index / kernel / outPerGroup); // g·in/groups + i
    return Math.floor(row / inPerGroup) * outPerGroup + (Math.floor(index / kernel) % outPerGroup);
  };
}

/** W'[c] = W[c]·scale[c] for each element's output channel: the first axis, or what `channelOf` says. */
export function foldedWeight(f: FoldInputs, channelOf?: (index: number) => number): Folded {
  const r = rounder(f.dtype);
  const s = bnScale(f);
  const per = f.weight.length / s.length;
  const channel = channelOf ?? ((i: number) => Math.floor(i / per));
  const values = new Float64Array(f.weight.length);
  for (let i = 0; i < values.length; i++) values[i] = r(f.weight[i]! * s[channel(i)]!);
  return { values, scale: values.map(Math.abs) };
}

export function foldedBias(f: FoldInputs): Folded {
  const r = rounder(f.dtype);
  const s = bnScale(f);
  const values = new Float64Array(s.length);
  const scale = new Float64Array(s.length);
  for (let o = 0; o < s.length; o++) {
    const beta = f.beta ? f.beta[o]! : 0;
    if (f.convBias) values[o] = r(r(r(f.convBias[o]! - f.mean[o]!) * s[o]!) + beta);
    else values[o] = r(beta - r(f.mean[o]! * s[o]!));
    scale[o] = (Math.abs(f.convBias?.[o] ?? 0) + Math.abs(f.mean[o]!)) * Math.abs(s[o]!) + Math.abs(beta);
  }
  return { values, scale };
}
