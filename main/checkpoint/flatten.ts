/**
 * Flat views of a nested checkpoint, as the target formats need them.
 *
 * `dcpEntries` follows torch's `flatten_state_dict` (torch/distributed/checkpoint/_nested_dict.py)
 * over `traverse_state_dict` (_traverse.py, the ≥ 2.4 traversal): mappings are walked with
 * `str(key)`; a list is walked only when it holds a tensor or a non-terminal container; tuples
 * and everything else are leaves, saved whole as bytes items. The flattened key is the path
 * joined by dots, and the path itself goes to `planner_data`.
 *
 * `tensorEntries` is the flat name → tensor map safetensors and shard sets hold: every tensor by
 * its dotted path, every other value reported as not carried.
 */
import type { DroppedItem } from '../../shared/reshard.ts';
import { typeName } from './inspect.ts';
import { fail } from '../errors.ts';
import { PyDict, PyFloat, PyGlobal, PyList, PyObject, PySet, PyTuple, pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { childrenOf, walkTensors } from './tree.ts';
import { dottedName } from './replace-tensors.ts';

export interface FlatEntry {
  name: string;
  path: (string | number)[];
  value: PyValue;
}

/** Python's `str()` of a dict key, as `_traverse_obj` turns keys into path parts. */
export function pyStr(k: PyValue): string {
  if (typeof k === 'string') return k;
  if (k === null) return 'None';
  if (k === true) return 'True';
  if (k === false) return 'False';
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (k instanceof PyFloat) return Number.isInteger(k.value) ? k.value.toFixed(1) : String(k.value);
  if (k instanceof PyTuple) return `(${k.items.map((x) => (typeof x === 'string' ? `'${x}'` : pyStr(x))).join(', ')}${k.items.length === 1 ? ',' : ''})`;
  if (k instanceof PyGlobal) return `<${k.fullName}>`;
  return pyRepr(k);
}

/** The most path keys `dcpEntries` makes before it calls the tree pathological. */
const MAX_PATH_KEYS = 20_000_000;

/** `_traverse.py`'s `_is_terminal`: a list is a leaf unless it holds a tensor or a non-leaf container (a list met again on the way is a cycle, not a leaf). */
function isTerminal(v: PyValue, onPath: Set<object> = new Set()): boolean {
  if (v instanceof PyDict) return false;
  if (!(v instanceof PyList)) return true;
  if (onPath.has(v)) return false;
  onPath.add(v);
  for (const e of v.items) {
    if ((e instanceof PyDict || e instanceof PyList) && !isTerminal(e, onPath)) return false;
    if (e instanceof TorchTensor) return false;
  }
  onPath.delete(v);
  return true;
}

/**
 * The items a DCP save of `root` holds, in `state_dict` order, with what torch loses on the way
 * (empty dicts, dict attributes such as a state dict's `_metadata`).
 */
export function dcpEntries(root: PyValue): { entries: FlatEntry[]; dropped: DroppedItem[] } {
  if (!(root instanceof PyDict)) fail('unsupported', `a distributed checkpoint saves a dict; this checkpoint holds a ${typeName(root)} at the top`);
  const entries: FlatEntry[] = [];
  const dropped: DroppedItem[] = [];
  const names = new Set<string>();
  // torch's traversal (_traverse.py `traverse_state_dict`) recurses without a memo: a dict or list
  // that holds itself never ends (RecursionError), and one held at many places is walked once per
  // path, which containers that share one another make 2^depth. Both are refused here (a 4 KB
  // pickle took 4 GB and never finished); the budget counts path keys made, far above any real
  // state dict's (500,000 tensors at depth 6 make 3.5 million).
  const onPath = new Set<object>();
  let pathKeys = 0;
  const visit = (p: (string | number)[], v: PyValue): void => {
    if ((pathKeys += p.length) > MAX_PATH_KEYS)
      fail(
        'too-large',
        `flattening for a distributed checkpoint makes over ${MAX_PATH_KEYS} path keys (containers that share one another); torch's flatten_state_dict would walk each path too`,
      );
    if (v instanceof PyDict || v instanceof PyList) {
      if (onPath.has(v))
        fail(
          'unsupported',
          `the ${v instanceof PyDict ? 'dict' : 'list'} at ${dottedName(p) || 'the top'} holds itself; torch's flatten_state_dict never ends on it (a distributed checkpoint cannot hold a cycle)`,
        );
      onPath.add(v);
      try {
        visitContainer(p, v);
      } finally {
        onPath.delete(v);
      }
      return;
    }
    visitContainer(p, v);
  };
  const visitContainer = (p: (string | number)[], v: PyValue): void => {
    if (v instanceof PyDict) {
      if (v.attrs?.size)
        dropped.push({
          name: dottedName(p),
          type: 'attributes',
          reason: `dict attributes (${v.attrs.entries.map(([k]) => pyStr(k)).join(', ')}) are not kept by a distributed checkpoint`,
        });
      if (v.size === 0 && p.length)
        dropped.push({ name: dottedName(p), type: typeName(v), reason: 'an empty dict is not kept by a distributed checkpoint (torch drops it too)' });
      for (const [k, x] of v.entries) visit([...p, pyStr(k)], x);
    } else if (isTerminal(v)) {
      const name = dottedName(p);
      if (names.has(name)) fail('unsupported', `two items flatten to the same key ${JSON.stringify(name)} (torch's flatten_state_dict refuses this too)`);
      names.add(name);
      entries.push({ name, path: p, value: v });
    } else if (v instanceof PyList) {
      v.items.forEach((x, i) => visit([...p, i], x));
    }
  };
  if (root.attrs?.size)
    dropped.push({
      name: '',
      type: 'attributes',
      reason: `dict attributes (${root.attrs.entries.map(([k]) => pyStr(k)).join(', ')}) are not kept by a distributed checkpoint`,
    });
  for (const [k, v] of root.entries) visit([pyStr(k)], v);
  return { entries, dropped };
}

/**
 * Every tensor by its dotted path (a flat state dict keeps its keys), and every other value,
 * dict attribute or non-dense tensor listed as dropped.
 */
export function tensorEntries(root: PyValue): { tensors: { name: string; path: (string | number)[]; tensor: TorchTensor }[]; dropped: DroppedItem[] } {
  const tensors: { name: string; path: (string | number)[]; tensor: TorchTensor }[] = [];
  const dropped: DroppedItem[] = [];
  const names = new Map<string, TorchTensor>();
  const onPath = new Set<object>();
  const visit = (p: (string | number)[], v: PyValue): void => {
    const name = dottedName(p);
    if (v instanceof TorchTensor) {
      if (!v.storage || (v.kind !== 'dense' && v.kind !== 'parameter')) {
        dropped.push({ name, type: v.subclass ?? `${v.kind} tensor`, reason: `a ${v.subclass ?? v.kind} tensor is not a plain array of numbers` });
        return;
      }
      const prev = names.get(name);
      if (prev && prev !== v) fail('unsupported', `two tensors would both be named ${JSON.stringify(name)}`);
      if (prev) return;
      names.set(name, v);
      tensors.push({ name, path: p, tensor: v });
      return;
    }
    if (v instanceof PyDict && v.attrs?.size)
      dropped.push({
        name: name || '(top)',
        type: 'attributes',
        reason: `dict attributes (${v.attrs.entries.map(([k]) => pyStr(k)).join(', ')}) have no place in a flat tensor file`,
      });
    // containers are walked; another object only when tensors are inside it (else it is one value)
    const walk =
      v instanceof PyDict || v instanceof PyList || v instanceof PyTuple || v instanceof PySet || (v instanceof PyObject && walkTensors(v).length > 0);
    const kids = walk ? childrenOf(v as PyValue) : [];
    if (kids.length && !onPath.has(v as object)) {
      onPath.add(v as object);
      for (const [k, x] of kids) visit([...p, k], x);
      onPath.delete(v as object);
      return;
    }
    if (p.length === 0 && walk) return;
    dropped.push({ name, type: typeName(v), reason: `not a tensor (${pyRepr(v).slice(0, 60)}); a flat tensor file cannot hold it` });
  };
  visit([], root);
  return { tensors, dropped };
}
