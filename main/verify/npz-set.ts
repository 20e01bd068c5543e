/**
 * A test set in a `.npz`: images under `x` (or `images`, `data`, `X`), integer labels under `y`
 * (or `labels`, `targets`, `label`). Images are N×C×H×W, N×H×W×C, N×H×W (one channel) or N×D
 * (flattened C·H·W, as sklearn's digits come), float or 8-bit.
 */
import type { NpzArray } from '../formats/numpy/npz.ts';
import { readNpzArrays } from '../formats/numpy/npz.ts';
import { fail } from '../errors.ts';
import type { RawImage, ShapeHint, TestSet } from './test-set.ts';
import { toFloat64 } from './tensor-values.ts';

const X_KEYS = ['x', 'images', 'data', 'X', 'x_test', 'inputs'];
const Y_KEYS = ['y', 'labels', 'targets', 'label', 'y_test', 'target'];

export function openNpzSet(file: string, hint: ShapeHint): TestSet {
  const arrays = readNpzArrays(file);
  const pick = (keys: string[], what: string): NpzArray => {
    for (const k of keys) {
      const a = arrays.get(k);
      if (a) return a;
    }
    return fail('usage', `${file}: no ${what} array (looked for ${keys.join(', ')}; found ${[...arrays.keys()].join(', ') || 'nothing'})`, file);
  };
  const x = pick(X_KEYS, 'image');
  const y = pick(Y_KEYS, 'label');
  const n = x.shape[0] ?? 0;
  if (y.shape.length !== 1 || y.shape[0] !== n)
    fail('usage', `${file}: labels are [${y.shape.join(', ')}] but there are ${n} images; expected one integer label per image`, file);
  if (!['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64'].includes(y.dtype))
    fail('usage', `${file}: labels are ${y.dtype}; expected integers`, file);
  const labels = Int32Array.from(toFloat64(y.data, y.dtype));
  if (!['float32', 'float64', 'uint8', 'float16'].includes(x.dtype))
    fail('unsupported', `${file}: images are ${x.dtype}; verify reads float32, float64, float16 or uint8`, file);
  const geometry = layoutOf(x.shape, hint, file);
  const per = geometry.channels * geometry.height * geometry.width;
  const values: Uint8Array | Float32Array =
    x.dtype === 'uint8'
      ? x.data
      : x.dtype === 'float32'
        ? new Float32Array(x.data.buffer.slice(x.data.byteOffset, x.data.byteOffset + x.data.byteLength))
        : Float32Array.from(toFloat64(x.data, x.dtype));
  return {
    format: 'npz',
    path: file,
    count: n,
    labels,
    classNames: null,
    notes: [`images ${x.dtype} [${x.shape.join(', ')}] read as ${geometry.layout === 'CHW' ? 'N×C×H×W' : 'N×H×W×C'}`],
    sample(i: number): RawImage {
      return { ...geometry, data: values.subarray(i * per, (i + 1) * per) };
    },
  };
}

function layoutOf(shape: number[], hint: ShapeHint, file: string): Omit<RawImage, 'data'> {
  const [, a, b, c] = shape as [number, number, number, number];
  if (shape.length === 4) {
    const chw = { layout: 'CHW' as const, channels: a, height: b, width: c };
    const hwc = { layout: 'HWC' as const, channels: c, height: a, width: b };
    if (hint.channels === a && hint.height === b && hint.width === c) return chw;
    if (hint.channels === c && hint.height === a && hint.width === b) return hwc;
    const few = (n: number): boolean => n === 1 || n === 3 || n === 4;
    return few(c) && !few(a) ? hwc : chw;
  }
  if (shape.length === 3) return { layout: 'CHW', channels: 1, height: a, width: b };
  if (shape.length === 2) {
    const { channels: ch, height: h, width: w } = hint;
    if (ch && h && w && ch * h * w === a) return { layout: 'CHW', channels: ch, height: h, width: w };
    const side = Math.round(Math.sqrt(a));
    if (side * side === a) return { layout: 'CHW', channels: 1, height: side, width: side };
    return fail('usage', `${file}: images are flat rows of ${a} values that do not fit the graph's input; reshape x to N×C×H×W`, file);
  }
  return fail('usage', `${file}: images are [${shape.join(', ')}]; expected N×C×H×W, N×H×W×C, N×H×W or N×D`, file);
}
