import { fail } from '../errors.ts';
import { PyDict, PyList, PyObject, PySet, PyTuple, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';

/** A step from a container to a child: a dict key, a list/tuple index, or an attribute name. */
export type PathKey = string | number;

/** Markers for the parts of an opaque object that are not its attribute dict. */
export const ARGS_KEY = '(args)';
export const ITEMS_KEY = '(items)';

export interface TensorAt {
  readonly path: PathKey[];
  readonly tensor: TorchTensor;
}

/**
 * A tensor `walkTensors` found: its path is made when read, from its container's path (one array
 * shared by the container's tensors) and its own key. A 500,000-tensor state dict held a path
 * array per tensor (~56 bytes each) for as long as the checkpoint was open.
 */
export class TensorInContainer implements TensorAt {
  constructor(
    /** the container's path: the same array for every tensor the container holds */
    readonly container: readonly PathKey[],
    /** the tensor's key in its container; undefined for a tensor at the root */
    readonly key: PathKey | undefined,
    readonly tensor: TorchTensor,
  ) {}
  get path(): PathKey[] {
    return this.key === undefined ? [...this.container] : [...this.container, this.key];
  }
}

/** The number of keys in a tensor's path, without making the path (a walk's `path` is made per read). */
export function pathLength(t: TensorAt): number {
  return t instanceof TensorInContainer ? t.container.length + (t.key === undefined ? 0 : 1) : t.path.length;
}

/** Calls `f` with each key of a tensor's path in order, without making the path. */
export function forEachPathKey(t: TensorAt, f: (key: PathKey) => void): void {
  if (!(t instanceof TensorInContainer)) return t.path.forEach((k) => f(k));
  for (const k of t.container) f(k);
  if (t.key !== undefined) f(t.key);
}

/** One visit of a container: its path, copied when its first tensor is found. */
interface ContainerVisit {
  path: readonly PathKey[] | null;
}

/** Visiting more nodes than this means the tree is pathological (shared sub-trees nested deeply). */
const MAX_NODES = 5_000_000;

/**
 * The children of a container, in order, as (key, value). An opaque object's children are its
 * attribute dict (BUILD state, keyed by attribute name, the way `torch.load` would set them),
 * then its dict items, list items and constructor arguments.
 */
export function childrenOf(v: PyValue): [PathKey, PyValue][] {
  if (v instanceof PyDict) return v.entries.map(([k, x]) => [keyText(k), x]);
  if (v instanceof PyList || v instanceof PyTuple || v instanceof PySet) return v.items.map((x, i) => [i, x]);
  if (v instanceof PyObject) {
    const out: [PathKey, PyValue][] = [];
    const st = v.state;
    const addDict = (d: PyValue | undefined): void => {
      if (d instanceof PyDict) for (const [k, x] of d.entries) out.push([keyText(k), x]);
    };
    if (st instanceof PyTuple && st.items.length === 2) {
      addDict(st.items[0]);
      addDict(st.items[1]);
    } else if (st instanceof PyDict) addDict(st);
    else if (st !== undefined && st !== null) out.push(['(state)', st]);
    for (const [k, x] of v.dictItems) out.push([keyText(k), x]);
    v.listItems.forEach((x, i) => out.push([`${ITEMS_KEY}${i}`, x]));
    if (v.args.length) out.push([ARGS_KEY, new PyTuple(v.args)]);
    return out;
  }
  return [];
}

export function keyText(k: PyValue): PathKey {
  if (typeof k === 'string' || typeof k === 'number') return k;
  if (typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  if (k === null) return 'None';
  if (k instanceof PyTuple) return `(${k.items.map((x) => String(keyText(x))).join(', ')})`;
  return String(k);
}

/**
 * Every tensor reachable from the root, at every path it is reachable by (a tied tensor appears
 * once per path). Cycles are cut; a tree that would take too long to walk is an error.
 */
export function walkTensors(root: PyValue): TensorAt[] {
  const out: TensorAt[] = [];
  const onPath = new Set<object>();
  // a shared container found to hold no tensor is not walked again: a memo DAG of empty lists
  // has 2^depth paths but only depth containers
  const tensorFree = new WeakSet<object>();
  let visited = 0;
  let cuts = 0;
  const path: PathKey[] = [];
  const visit = (v: PyValue, parent: ContainerVisit): void => {
    if (++visited > MAX_NODES)
      fail(
        'too-large',
        `the checkpoint container reaches its tensors by over ${MAX_NODES} paths (containers that share one another); no torch.save output is shaped like that`,
      );
    if (v instanceof TorchTensor) {
      const key = path.length ? path[path.length - 1] : undefined;
      out.push(new TensorInContainer((parent.path ??= path.slice(0, -1)), key, v));
      return;
    }
    if (v === null || typeof v !== 'object' || tensorFree.has(v)) return;
    if (onPath.has(v)) {
      cuts++;
      return;
    }
    const found = out.length;
    const cutsBefore = cuts;
    const here: ContainerVisit = { path: null };
    // dicts and sequences are walked in place: `childrenOf` would make a (key, value) pair per
    // child, 500,000 of them for a flat state dict
    if (v instanceof PyDict) {
      if (v.entries.length === 0) return;
      onPath.add(v);
      for (let i = 0; i < v.entries.length; i++) {
        const entry = v.entries[i]!; // indexed: see `asStateDict`
        path.push(keyText(entry[0]));
        visit(entry[1], here);
        path.pop();
      }
    } else if (v instanceof PyList || v instanceof PyTuple || v instanceof PySet) {
      if (v.items.length === 0) return;
      onPath.add(v);
      for (let i = 0; i < v.items.length; i++) {
        path.push(i);
        visit(v.items[i]!, here);
        path.pop();
      }
    } else {
      const kids = childrenOf(v);
      if (kids.length === 0) return;
      onPath.add(v);
      for (const [k, x] of kids) {
        path.push(k);
        visit(x, here);
        path.pop();
      }
    }
    onPath.delete(v);
    if (out.length === found && cuts === cutsBefore) tensorFree.add(v);
  };
  visit(root, { path: null });
  return out;
}

/**
 * Whether some tensor `walkTensors` would give satisfies `test`, each container looked into once
 * (the tensors `walkTensors` reaches by every path, without a path or an entry made for each).
 */
export function someTensor(root: PyValue, test: (t: TorchTensor) => boolean): boolean {
  const seen = new Set<object>();
  const stack: PyValue[] = [root];
  while (stack.length) {
    const v = stack.pop()!;
    if (v instanceof TorchTensor) {
      if (test(v)) return true;
      continue;
    }
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof PyDict) for (const [, x] of v.entries) stack.push(x);
    else if (v instanceof PyList || v instanceof PyTuple || v instanceof PySet) for (const x of v.items) stack.push(x);
    else for (const [, x] of childrenOf(v)) stack.push(x);
  }
  return false;
}

/** The value at a path (as `walkTensors` and `findRoles` give paths), or undefined. */
export function valueAt(root: PyValue, path: PathKey[]): PyValue | undefined {
  let cur: PyValue | undefined = root;
  for (const k of path) {
    if (cur === undefined) return undefined;
    // direct lookups first; the general route lists the children
    const direct: PyValue | undefined =
      cur instanceof PyDict ? cur.get(k) : (cur instanceof PyList || cur instanceof PyTuple) && typeof k === 'number' ? cur.items[k] : undefined;
    if (direct !== undefined) {
      cur = direct;
      continue;
    }
    const kids = childrenOf(cur);
    cur = (kids.find(([kk]) => kk === k) ?? kids.find(([kk]) => String(kk) === String(k)))?.[1];
  }
  return cur;
}

export function pathText(path: PathKey[]): string {
  return path.map((k) => (typeof k === 'number' ? `[${k}]` : k)).join('/');
}
