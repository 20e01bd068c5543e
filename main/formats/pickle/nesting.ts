import { PyDict, PyList, PyObject, PyPersistent, PySet, PyTuple, type PyValue } from '../values/python-values.ts';

/**
 * How deep an unpickled value may nest. CPython's pickler recurses once per level and stops at
 * Python's recursion limit (1000 by default: `Py_EnterRecursiveCall` in Modules/_pickle.c,
 * `save`), so torch.save never writes a structure nested deeper than this. Everything that walks
 * a checkpoint (tensor search, roles, security, the tree view, the writer) recurses too, and
 * this bound keeps them well inside the JavaScript stack.
 */
export const MAX_NESTING = 1000;

/** The values a container refers to (keys, items, an object's recipe and state). */
function refsOf(v: object): PyValue[] {
  if (v instanceof PyDict) {
    // indexed, not destructured: this runs once per pickle, mostly unoptimized, over every entry
    const out: PyValue[] = [];
    for (let i = 0; i < v.entries.length; i++) {
      const entry = v.entries[i]!;
      out.push(entry[0], entry[1]);
    }
    if (v.attrs) out.push(v.attrs);
    return out;
  }
  if (v instanceof PyList || v instanceof PyTuple || v instanceof PySet) return v.items;
  if (v instanceof PyObject) {
    const out: PyValue[] = [v.callable, ...v.args, ...v.listItems];
    for (const [k, x] of v.dictItems) out.push(k, x);
    if (v.state !== undefined) out.push(v.state);
    if (v.kwargs) out.push(v.kwargs);
    return out;
  }
  if (v instanceof PyPersistent) return [v.pid];
  return [];
}

/** Whether `v` can hold other values (`refsOf` may list some). */
function isContainer(v: object): boolean {
  return v instanceof PyDict || v instanceof PyList || v instanceof PyTuple || v instanceof PySet || v instanceof PyObject || v instanceof PyPersistent;
}

/**
 * The nesting depth of a value: the longest chain of containers from it to a leaf. Each
 * container is measured once (a memo DAG whose paths multiply costs its size, not its paths), a
 * reference back up the chain (a cycle) ends that chain, and the walk is iterative, so no input
 * can overflow the stack here. Stops as soon as the depth passes `limit`, returning limit + 1.
 */
export function nestingDepth(root: PyValue, limit = MAX_NESTING): number {
  if (root === null || typeof root !== 'object') return 0;
  const height = new Map<object, number>();
  const onPath = new Set<object>();
  type Frame = { node: object; refs: PyValue[]; next: number; best: number };
  const frames: Frame[] = [{ node: root, refs: refsOf(root), next: 0, best: 0 }];
  onPath.add(root);
  while (frames.length) {
    const f = frames[frames.length - 1]!;
    if (f.next < f.refs.length) {
      const kid = f.refs[f.next++];
      // a leaf (a str, a tensor: 100,000 of them in a state dict) has depth 0 and is not looked up or recorded
      if (kid === null || kid === undefined || typeof kid !== 'object' || !isContainer(kid) || onPath.has(kid)) continue;
      const known = height.get(kid);
      if (known !== undefined) {
        f.best = Math.max(f.best, known);
        continue;
      }
      const refs = refsOf(kid);
      if (refs.length === 0) {
        height.set(kid, 0);
        continue;
      }
      if (frames.length > limit) return limit + 1;
      onPath.add(kid);
      frames.push({ node: kid, refs, next: 0, best: 0 });
      continue;
    }
    frames.pop();
    onPath.delete(f.node);
    const h = f.best + 1;
    height.set(f.node, h);
    const parent = frames[frames.length - 1];
    if (parent) parent.best = Math.max(parent.best, h);
  }
  return height.get(root) ?? 0;
}
