import { PyDict, PyObject, PyTuple, type PyValue } from '../formats/values/python-values.ts';
import { TorchStorage, TorchTensor } from '../formats/values/torch-values.ts';

/** A value with no global inside: a storage, a tuple of numbers, an empty dict without attributes. */
function isEmptyLeaf(a: PyValue): boolean {
  if (a === null || typeof a !== 'object' || a instanceof TorchStorage) return true;
  if (a instanceof PyTuple) return a.items.every((x) => typeof x === 'number');
  return a instanceof PyDict && a.entries.length === 0 && !a.attrs;
}

/**
 * Visits every object a writer would pickle for a tree once: containers, objects with their
 * callable, arguments, items and state, tensors with their rebuild recipe (function and
 * arguments: a subclass type, hooks), and the globals they name. A tensor's arguments that can
 * hold no global (its storage, tuples of ints, an empty hooks dict) are not visited.
 */
export function eachPickledValue(root: PyValue, visit: (v: object) => void): void {
  const seen = new Set<object>();
  const stack: PyValue[] = [root];
  while (stack.length) {
    const v = stack.pop()!;
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    // a tensor is visited once per place it is held (visits only collect): 500,000 tensors are
    // not 500,000 set entries; the containers that could form a cycle are still recorded
    if (!(v instanceof TorchTensor)) seen.add(v);
    visit(v);
    if (v instanceof TorchTensor) {
      stack.push(v.rebuild);
      // a plain tensor's arguments: its storage, ints, tuples of ints and an empty hooks dict; only
      // those with something in them are walked (100,000 tensors are otherwise 500,000 set entries).
      // Arguments made per read are always those (`TorchTensor.args`): not made only to be skipped.
      if (!v.argsAreMadePerRead) for (const a of v.args) if (!isEmptyLeaf(a)) stack.push(a);
    } else if (v instanceof PyDict) {
      for (const [k, x] of v.entries) stack.push(k, x);
      if (v.attrs) stack.push(v.attrs);
    } else if (v instanceof PyObject) {
      stack.push(v.callable, ...v.args, ...v.listItems, ...v.dictItems.flat());
      if (v.state !== undefined) stack.push(v.state);
      if (v.kwargs) stack.push(v.kwargs);
    } else if ('items' in v && Array.isArray((v as { items: unknown }).items)) stack.push(...(v as { items: PyValue[] }).items);
  }
}
