import { PyDict, PyList, PyObject, PySet, PyTuple, type PyValue } from '../formats/pickle/values.ts';
import { TorchTensor } from '../formats/torch-values.ts';

/**
 * A copy of a container tree with some tensors replaced (by object, so a tensor reachable by two
 * paths stays one object). Shared sub-trees stay shared; cycles are kept as cycles.
 */
export function replaceTensors(root: PyValue, replace: (t: TorchTensor) => TorchTensor): PyValue {
  const memo = new Map<object, PyValue>();
  const copy = (v: PyValue): PyValue => {
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof TorchTensor) return replace(v);
    const known = memo.get(v);
    if (known !== undefined) return known;
    if (v instanceof PyDict) {
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
      const t = new PyTuple(v.items.map(copy));
      memo.set(v, t);
      return t;
    }
    if (v instanceof PySet) return new PySet(v.items.map(copy), v.frozen);
    if (v instanceof PyObject) {
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

/** A dotted name for a path, as DCP's `flatten_state_dict` and safetensors name nested tensors. */
export function dottedName(path: (string | number)[]): string {
  return path.map(String).join('.');
}
