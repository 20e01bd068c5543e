/**
 * Raw test images → the graph's input, the way a torchvision pipeline does it:
 * channels (RGB→L with PIL's ITU-R 601-2 luma, gray repeated to RGB, alpha dropped), resize (PIL's
 * separable resampling: bilinear with antialiasing on downscale, box for `area`, nearest), then
 * scale (8-bit: 1/255 like ToTensor), then per-channel (x - mean) / std, written NCHW or NHWC.
 * 8-bit images are rounded back to 8 bits after each resize pass, as PIL resizes 8-bit images.
 */
import type { Preprocess, ResizeMode, TensorLayout } from '../../shared/verify.ts';
import { fail } from '../errors.ts';
import type { OnnxValueInfo } from '../formats/onnx/onnx-model.ts';
import type { RawImage, ShapeHint } from './test-set.ts';

/** The input geometry: its rank decides whether there is a channel dim (4), only H×W (3), or a flat vector (2). */
export interface InputPlan extends Preprocess {
  rank: number;
}

const few = (n: unknown): n is number => n === 1 || n === 3 || n === 4;

/** What the graph's input (and the options) say about C, H and W before any sample is read. */
export function shapeHint(input: OnnxValueInfo, over: Partial<Preprocess> = {}): ShapeHint {
  const d = input.dims ?? [];
  const num = (x: unknown): number | null => (typeof x === 'number' && x > 0 ? x : null);
  let [c, h, w]: unknown[] = [null, null, null];
  if (d.length === 4) [c, h, w] = (over.layout ?? (few(d[1]) || !few(d[3]) ? 'NCHW' : 'NHWC')) === 'NCHW' ? [d[1], d[2], d[3]] : [d[3], d[1], d[2]];
  else if (d.length === 3) [c, h, w] = [1, d[1], d[2]];
  return { channels: over.channels ?? num(c), height: over.height ?? num(h), width: over.width ?? num(w) };
}

/** Fills what the options leave open from the graph's input shape and the first sample. */
export function resolvePreprocess(input: OnnxValueInfo, first: RawImage, over: Partial<Preprocess> = {}): InputPlan {
  const dims = input.dims ?? [];
  const rank = dims.length || 4;
  const num = (d: unknown): number | null => (typeof d === 'number' && d > 0 ? d : null);
  let layout: TensorLayout = over.layout ?? 'NCHW';
  let channels: number | null = null;
  let height: number | null = null;
  let width: number | null = null;
  if (rank === 4) {
    if (!over.layout)
      layout = few(dims[1]) ? 'NCHW' : few(dims[3]) ? 'NHWC' : first.layout === 'HWC' && !few(num(dims[1])) && few(num(dims[3])) ? 'NHWC' : 'NCHW';
    const [c, h, w] = layout === 'NCHW' ? [dims[1], dims[2], dims[3]] : [dims[3], dims[1], dims[2]];
    [channels, height, width] = [num(c), num(h), num(w)];
  } else if (rank === 3) {
    [channels, height, width] = [1, num(dims[1]), num(dims[2])];
  } else if (rank === 2) {
    const d = num(dims[1]);
    const c = over.channels ?? first.channels;
    if (d && !(over.height && over.width) && d !== c * first.height * first.width) {
      const side = Math.round(Math.sqrt(d / c));
      if (side * side * c !== d) fail('usage', `the graph takes flat vectors of ${d} values; say the image size with --size H,W`);
      [height, width] = [side, side];
    }
    channels = c;
  } else fail('unsupported', `the graph's input ${input.name} has rank ${rank}; verify feeds images (N×C×H×W, N×H×W×C, N×H×W or N×D)`);
  const plan: InputPlan = {
    rank,
    layout,
    channels: over.channels ?? channels ?? first.channels,
    height: over.height ?? height ?? first.height,
    width: over.width ?? width ?? first.width,
    resize: over.resize ?? 'bilinear',
    scale: over.scale ?? null,
    mean: over.mean ?? [0],
    std: over.std ?? [1],
  };
  const c = plan.channels;
  for (const [k, v] of [
    ['mean', plan.mean],
    ['std', plan.std],
  ] as const) {
    if (v.length !== 1 && v.length !== c) fail('usage', `--${k} has ${v.length} values; give 1 or ${c} (one per channel)`);
  }
  if (plan.std.some((s) => s === 0 || !Number.isFinite(s))) fail('usage', '--std values must be finite and non-zero');
  if (rank === 2) {
    const d = num(dims[1]);
    if (d && d !== plan.channels * plan.height * plan.width)
      fail(
        'usage',
        `the graph takes flat vectors of ${d} values, but ${plan.channels}×${plan.height}×${plan.width} images give ${plan.channels * plan.height * plan.width}`,
      );
  }
  return plan;
}

/** Elements one sample takes in the input tensor. */
export function sampleSize(p: InputPlan): number {
  return p.channels * p.height * p.width;
}

/** Writes one sample's preprocessed values into `out` at `offset`. */
export function preprocessInto(img: RawImage, p: InputPlan, out: Float32Array, offset: number): void {
  if (isPlainCopy(img, p)) {
    out.set(img.data, offset);
    return;
  }
  const eightBit = img.data instanceof Uint8Array;
  let planes = toPlanes(img);
  planes = adaptChannels(planes, img.channels, p.channels, eightBit, img.height * img.width);
  planes = resize(planes, p.channels, img.height, img.width, p.height, p.width, p.resize, eightBit);
  // ToTensor is `img.float().div(255)`: a float32 division, not a multiplication by 1/255
  const toUnit = p.scale === null ? (eightBit ? (v: number): number => Math.fround(v / 255) : Math.fround) : (v: number): number => Math.fround(v * p.scale!);
  const hw = p.height * p.width;
  for (let c = 0; c < p.channels; c++) {
    const mean = p.mean.length === 1 ? p.mean[0]! : p.mean[c]!;
    const std = p.std.length === 1 ? p.std[0]! : p.std[c]!;
    for (let i = 0; i < hw; i++) {
      // Normalize subtracts and divides in float32
      const v = Math.fround(Math.fround(toUnit(planes[c * hw + i]!) - mean) / std);
      out[offset + (p.layout === 'NCHW' || p.rank < 4 ? c * hw + i : i * p.channels + c)] = v;
    }
  }
}

/**
 * Float32 C×H×W samples already the input's size, into an N×C×H×W input with no scale, mean 0 and
 * std 1: every step below leaves each value as it is (x - (+0) and x / 1 are exact in float32, -0
 * included; -0 as the mean would turn -0 into +0), so
 * the sample is copied as it stands, as `torch.from_numpy(x)` feeds it. On 5,000 CIFAR-size
 * samples that is 0.1-0.2 s instead of 0.6-1 s of this process's CPU, taken from the models'
 * forward passes on a machine of two cores.
 */
function isPlainCopy(img: RawImage, p: InputPlan): img is RawImage & { data: Float32Array } {
  return (
    img.data instanceof Float32Array &&
    img.layout === 'CHW' &&
    (p.layout === 'NCHW' || p.rank < 4) &&
    img.channels === p.channels &&
    img.height === p.height &&
    img.width === p.width &&
    p.scale === null &&
    p.mean.every((m) => Object.is(m, 0)) &&
    p.std.every((s) => s === 1)
  );
}

function toPlanes(img: RawImage): Float64Array {
  const { channels: c, height: h, width: w } = img;
  const out = new Float64Array(c * h * w);
  if (img.layout === 'CHW') for (let i = 0; i < out.length; i++) out[i] = img.data[i]!;
  else for (let y = 0; y < h * w; y++) for (let k = 0; k < c; k++) out[k * h * w + y] = img.data[y * c + k]!;
  return out;
}

function adaptChannels(planes: Float64Array, from: number, to: number, eightBit: boolean, hw: number): Float64Array {
  if (from === to) return planes;
  let src = planes;
  let c = from;
  if (c === 4 || c === 2) {
    c -= 1; // drop alpha (PIL's RGBA→RGB and LA→L do not composite)
    src = planes.subarray(0, c * hw);
  }
  if (c === to) return src;
  const out = new Float64Array(to * hw);
  if (c === 3 && to === 1) {
    for (let i = 0; i < hw; i++) {
      const [r, g, b] = [src[i]!, src[hw + i]!, src[2 * hw + i]!];
      // PIL rgb2l: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
      out[i] = eightBit ? Math.floor((r * 19595 + g * 38470 + b * 7471 + 0x8000) / 65536) : 0.299 * r + 0.587 * g + 0.114 * b;
    }
    return out;
  }
  if (c === 1) {
    for (let k = 0; k < to; k++) out.set(src.subarray(0, hw), k * hw);
    return out;
  }
  return fail('usage', `test images have ${from} channels and the graph wants ${to}; no conversion between those`);
}

type Filter = { support: number; f: (x: number) => number };
const FILTERS: Record<Exclude<ResizeMode, 'nearest'>, Filter> = {
  bilinear: { support: 1, f: (x) => ((x < 0 ? -x : x) < 1 ? 1 - (x < 0 ? -x : x) : 0) },
  area: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
};

/** PIL's `precompute_coeffs` (src/libImaging/Resample.c): taps and normalised weights per output pixel. */
function coefficients(inSize: number, outSize: number, filter: Filter): { start: number; weights: Float64Array }[] {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const out: { start: number; weights: Float64Array }[] = [];
  for (let x = 0; x < outSize; x++) {
    const center = (x + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const weights = new Float64Array(Math.max(xmax, 0));
    let total = 0;
    for (let i = 0; i < xmax; i++) {
      weights[i] = filter.f((i + xmin - center + 0.5) / filterscale);
      total += weights[i]!;
    }
    if (total !== 0) for (let i = 0; i < xmax; i++) weights[i]! /= total;
    out.push({ start: xmin, weights });
  }
  return out;
}

function resize(planes: Float64Array, c: number, h: number, w: number, oh: number, ow: number, mode: ResizeMode, eightBit: boolean): Float64Array {
  if (h === oh && w === ow) return planes;
  const round = (v: number): number => (eightBit ? Math.min(255, Math.max(0, Math.round(v))) : v);
  if (mode === 'nearest') {
    const out = new Float64Array(c * oh * ow);
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < oh; y++) {
        const sy = Math.min(h - 1, Math.floor((y + 0.5) * (h / oh)));
        for (let x = 0; x < ow; x++) out[k * oh * ow + y * ow + x] = planes[k * h * w + sy * w + Math.min(w - 1, Math.floor((x + 0.5) * (w / ow)))]!;
      }
    }
    return out;
  }
  const filter = FILTERS[mode];
  // horizontal pass, then vertical, as PIL does
  let cur = planes;
  let cw = w;
  if (ow !== w) {
    const co = coefficients(w, ow, filter);
    const next = new Float64Array(c * h * ow);
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < h; y++) {
        const row = k * h * w + y * w;
        for (let x = 0; x < ow; x++) {
          const { start, weights } = co[x]!;
          let s = 0;
          for (let i = 0; i < weights.length; i++) s += cur[row + start + i]! * weights[i]!;
          next[k * h * ow + y * ow + x] = round(s);
        }
      }
    }
    cur = next;
    cw = ow;
  }
  if (oh !== h) {
    const co = coefficients(h, oh, filter);
    const next = new Float64Array(c * oh * cw);
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < oh; y++) {
        const { start, weights } = co[y]!;
        for (let x = 0; x < cw; x++) {
          let s = 0;
          for (let i = 0; i < weights.length; i++) s += cur[k * h * cw + (start + i) * cw + x]! * weights[i]!;
          next[k * oh * cw + y * cw + x] = round(s);
        }
      }
    }
    cur = next;
  }
  return cur;
}
