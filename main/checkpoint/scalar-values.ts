/**
 * The non-tensor values a checkpoint carries (epoch, best_acc, the optimizer's lr and betas),
 * decoded once for the CLI's tree, the app's Values list and Verify alike: numpy scalars
 * (`numpy.core.multiarray.scalar(dtype, bytes)`) read as the number they hold, not as pickle
 * internals.
 */
import type { ScalarValue } from '../../shared/inspect.ts';
import { isNumpyScalar, numpyDtypeOf, numpyScalarValue } from '../formats/numpy/numpy-values.ts';
import { PyDict, PyFloat, PyList, PyObject, PyTuple, pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { childrenOf } from './tree.ts';

const NUMPY_NAMES: Record<string, string> = {
  f8: 'float64',
  f4: 'float32',
  f2: 'float16',
  i8: 'int64',
  i4: 'int32',
  i2: 'int16',
  i1: 'int8',
  u8: 'uint64',
  u4: 'uint32',
  u2: 'uint16',
  u1: 'uint8',
  b1: 'bool',
};

/** A numpy scalar as `numpy.float64` and its value's text, or null when `v` is not one ckpt decodes. */
export function numpyScalarText(v: PyValue): { type: string; text: string } | null {
  if (!isNumpyScalar(v)) return null;
  const value = numpyScalarValue(v);
  if (value === null) return null;
  const descr = numpyDtypeOf(v.args[0] ?? null)?.descr.replace(/^[<>|=]/, '') ?? '';
  return { type: `numpy.${NUMPY_NAMES[descr] ?? descr}`, text: typeof value === 'boolean' ? (value ? 'True' : 'False') : String(value) };
}

/** A plain value's type and text (int, float, str, bool, None, numpy scalar), or null for containers and objects. */
export function scalarText(v: PyValue): { type: string; text: string } | null {
  if (v === null) return { type: 'None', text: 'None' };
  if (typeof v === 'boolean') return { type: 'bool', text: v ? 'True' : 'False' };
  if (typeof v === 'number' || typeof v === 'bigint') return { type: 'int', text: String(v) };
  if (typeof v === 'string') return { type: 'str', text: pyRepr(v) };
  if (v instanceof PyFloat) return { type: 'float', text: pyRepr(v) };
  return numpyScalarText(v);
}

/** How many values the walk looks at, whatever the pickle's shape: a bound on its work. */
const MAX_VISITS = 100_000;

/**
 * Values outside the tensors, shallowest first, at most `limit`, from containers at most
 * `maxDepth` deep: a breadth-first walk, so a checkpoint's top-level values (epoch, best_acc) are
 * listed even when an optimizer before them holds more than `limit` values, each level in file
 * order. Each container is entered once: a pickle can share one list many times over through its
 * memo (a list appended to itself 10 times is 10^8 paths at depth 8), and the shallowest path to it
 * is the one shown.
 */
export function scalarValues(root: PyValue, limit = 200, maxDepth = 8): ScalarValue[] {
  const out: ScalarValue[] = [];
  const entered = new Set<object>();
  const queue: { v: PyValue; path: (string | number)[]; depth: number }[] = [{ v: root, path: [], depth: 0 }];
  for (let i = 0; i < queue.length && out.length < limit; i++) {
    const { v, path, depth } = queue[i]!;
    const s = scalarText(v);
    if (s) {
      if (path.length) out.push({ path, ...s });
      continue;
    }
    if (v instanceof TorchTensor) continue;
    // a list of plain values (an optimizer group's params) is one value, not one line per item
    if ((v instanceof PyList || v instanceof PyTuple) && v.items.length > 4 && v.items.every((x) => scalarText(x) !== null)) {
      out.push({
        path,
        type: v instanceof PyList ? 'list' : 'tuple',
        text: `${v.items.length} items: ${v.items
          .slice(0, 4)
          .map((x) => scalarText(x)!.text)
          .join(', ')}, …`,
      });
      continue;
    }
    // a state dict (every value a tensor) holds no values worth listing
    if (v instanceof PyDict && v.size > 0 && allTensors(v)) continue;
    const container = v instanceof PyDict || v instanceof PyList || v instanceof PyTuple || (v instanceof PyObject && !isNumpyScalar(v));
    if (container && depth < maxDepth && !entered.has(v)) {
      entered.add(v);
      for (const [k, x] of childrenOf(v)) {
        if (queue.length >= MAX_VISITS) break;
        queue.push({ v: x, path: [...path, k], depth: depth + 1 });
      }
    }
  }
  return out;
}

/** Whether every value of `d` is a tensor (indexed, not `every(([, x]) => …)`: a state dict's 100,000 entries, read once, mostly unoptimized). */
function allTensors(d: PyDict): boolean {
  for (let i = 0; i < d.entries.length; i++) if (!(d.entries[i]![1] instanceof TorchTensor)) return false;
  return true;
}
