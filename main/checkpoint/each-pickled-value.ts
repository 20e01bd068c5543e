import { PyDict, PyObject, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';

/**
 * Visits every object a writer would pickle for a tree once: containers, objects with their
 * callable, arguments, items and state, tensors with their rebuild recipe (function and
 * arguments: a subclass type, hooks), and the globals they name.
 */
export function eachPickledValue(root: PyValue, visit: (v: object) => void): void {
  const seen = new Set<object>();
  const stack: PyValue[] = [root];
  while (stack.length) {
    const v = stack.pop()!;
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    visit(v);
    if (v instanceof TorchTensor) stack.push(v.rebuild, ...v.args);
    else if (v instanceof PyDict) {
      for (const [k, x] of v.entries) stack.push(k, x);
      if (v.attrs) stack.push(v.attrs);
    } else if (v instanceof PyObject) {
      stack.push(v.callable, ...v.args, ...v.listItems, ...v.dictItems.flat());
      if (v.state !== undefined) stack.push(v.state);
      if (v.kwargs) stack.push(v.kwargs);
    } else if ('items' in v && Array.isArray((v as { items: unknown }).items)) stack.push(...(v as { items: PyValue[] }).items);
  }
}
