import { PyDict, PyList, PyObject, PySet, PyTuple, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';

/** Replacements a copy can make as it goes; each gets `copy` to copy the parts it keeps. */
export interface CopyHooks {
  tensor?(t: TorchTensor): PyValue;
  /** a replacement for this dict, or undefined for a plain copy */
  dict?(d: PyDict, copy: (v: PyValue) => PyValue): PyValue | undefined;
  /** a replacement for this object, or undefined for a plain copy */
  object?(o: PyObject, copy: (v: PyValue) => PyValue): PyValue | undefined;
}

/**
 * A copy of a container tree: shared sub-trees stay shared and cycles stay cycles. Tensors are
 * kept as the same objects unless a hook replaces them, so a tensor reachable by two paths
 * (tied weights) stays one tensor in the copy.
 */
export function copyTree(root: PyValue, hooks: CopyHooks = {}): PyValue {
  const memo = new Map<object, PyValue>();
  const copy = (v: PyValue): PyValue => {
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof TorchTensor) return hooks.tensor ? hooks.tensor(v) : v;
    const known = memo.get(v);
    if (known !== undefined) return known;
    if (v instanceof PyDict) {
      const replaced = hooks.dict?.(v, copy);
      if (replaced !== undefined) {
        memo.set(v, replaced);
        return replaced;
      }
      const d = new PyDict(v.ordered);
      memo.set(v, d);
      for (const [k, x] of v.entries) d.set(copy(k), copy(x));
      if (v.attrs) d.attrs = copy(v.attrs) as PyDict;
      return d;
    }
    if (v instanceof PyList) {
      const l = new PyList();
      memo.set(v, l);
      l.items = v.items.map(copy);
      return l;
    }
    if (v instanceof PyTuple) {
      // made empty and filled after: a tuple that holds itself through a list or dict
      // (`t = ([],); t[0].append(t)`) then finds its own copy in `memo`, not a second one
      const t = new PyTuple([]);
      memo.set(v, t);
      for (const x of v.items) t.items.push(copy(x));
      return t;
    }
    if (v instanceof PySet) {
      // a set held at two places stays one set
      const s = new PySet([], v.frozen);
      memo.set(v, s);
      for (const x of v.items) s.items.push(copy(x));
      return s;
    }
    if (v instanceof PyObject) {
      const replaced = hooks.object?.(v, copy);
      if (replaced !== undefined) {
        memo.set(v, replaced);
        return replaced;
      }
      const o = new PyObject(copy(v.callable), v.args.map(copy), v.via, v.kwargs ? (copy(v.kwargs) as PyDict) : null);
      memo.set(v, o);
      o.listItems.push(...v.listItems.map(copy));
      o.dictItems.push(...v.dictItems.map(([k, x]) => [copy(k), copy(x)] as [PyValue, PyValue]));
      if (v.state !== undefined) o.state = copy(v.state);
      return o;
    }
    return v;
  };
  return copy(root);
}
