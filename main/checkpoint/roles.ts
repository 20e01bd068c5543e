import { PyDict, PyObject, PySet, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { childrenOf, type PathKey } from './tree.ts';

/** A state dict's key as `state_dict()` would give it, with its tensor. */
export interface StateDictEntry {
  key: string;
  tensor: TorchTensor;
}

/** What a part of the container is, as far as the engine can tell. */
export type RoleKind = 'state-dict' | 'optimizer' | 'lightning' | 'module' | 'shard';

export interface Role {
  kind: RoleKind;
  /** where it is, from the root */
  path: PathKey[];
  /** for state dicts and modules: the keys as `state_dict()` would give them, with the tensors */
  entries?: StateDictEntry[];
  /** for modules: the class name; for shards: the tensor class */
  className?: string;
  note?: string;
}

const SHARD_CLASSES = /(^|\.)(DTensor|ShardedTensor)$/;

/**
 * Finds the recognised parts: model state dicts (str → tensor maps with dotted keys, at any
 * depth), optimizer state dicts, Lightning checkpoints, whole pickled modules, and DTensor /
 * ShardedTensor entries.
 */
export function findRoles(root: PyValue): Role[] {
  const roles: Role[] = [];
  const seen = new Set<object>();
  const visit = (v: PyValue, path: PathKey[], depth: number): void => {
    if (v === null || typeof v !== 'object' || depth > 64) return;
    if (v instanceof TorchTensor) {
      if (v.subclass && SHARD_CLASSES.test(v.subclass)) roles.push({ kind: 'shard', path, className: v.subclass });
      return;
    }
    if (seen.has(v)) return;
    seen.add(v);
    if (v instanceof PyObject) {
      if (SHARD_CLASSES.test(v.className)) {
        roles.push({ kind: 'shard', path, className: v.className });
        return;
      }
      if (isModule(v)) {
        roles.push({ kind: 'module', path, className: v.className, entries: moduleStateDict(v) });
        return; // its tensors belong to the module
      }
      if (v.className.startsWith('__torch__.')) {
        roles.push({ kind: 'module', path, className: v.className, entries: scriptModuleTensors(v), note: 'TorchScript module' });
        return;
      }
    }
    if (v instanceof PyDict) {
      if (isLightning(v)) roles.push({ kind: 'lightning', path, note: lightningNote(v) });
      if (isOptimizer(v)) {
        roles.push({ kind: 'optimizer', path });
        return;
      }
      const sd = asStateDict(v);
      if (sd) {
        roles.push({ kind: 'state-dict', path, entries: sd });
        // DTensor / ShardedTensor values make it a sharded state dict (FSDP SHARDED_STATE_DICT)
        for (let i = 0; i < v.entries.length; i++) {
          const entry = v.entries[i]!; // indexed: see `asStateDict`
          const x = entry[1];
          const cls = x instanceof TorchTensor ? x.subclass : x instanceof PyObject ? x.className : null;
          if (cls && SHARD_CLASSES.test(cls)) roles.push({ kind: 'shard', path: [...path, String(entry[0])], className: cls });
        }
        return;
      }
    }
    for (const [k, x] of childrenOf(v)) visit(x, [...path, k], depth + 1);
  };
  visit(root, [], 0);
  return roles;
}

/** A dict of string keys whose values are tensors (a few non-tensor extras such as `_extra_state` are allowed). */
export function asStateDict(d: PyDict): StateDictEntry[] | null {
  if (d.size === 0 || !d.allStringKeys()) return null;
  const entries: StateDictEntry[] = [];
  let other = 0;
  let shards = 0;
  // indexed, not `for (const [k, v] of ...)`: run once per file, the loop is mostly not yet
  // optimized, and unoptimized destructuring of 100,000 pairs cost about 4 times the indexed reads
  for (let i = 0; i < d.entries.length; i++) {
    const entry = d.entries[i]!;
    const v = entry[1];
    if (v instanceof TorchTensor) entries.push({ key: entry[0] as string, tensor: v });
    else if (v instanceof PyObject && SHARD_CLASSES.test(v.className)) shards++;
    else if (v instanceof PyDict || v instanceof PyObject) return null;
    else other++;
  }
  if (entries.length + shards === 0 || other > entries.length + shards) return null;
  return entries;
}

export function isOptimizer(d: PyDict): boolean {
  return d.get('state') instanceof PyDict && d.has('param_groups');
}

export function isLightning(d: PyDict): boolean {
  return d.has('pytorch-lightning_version') || (d.has('state_dict') && d.has('global_step') && d.has('epoch'));
}

function lightningNote(d: PyDict): string {
  const v = d.get('pytorch-lightning_version');
  return typeof v === 'string' ? `Lightning ${v}` : 'Lightning-style checkpoint';
}

/** An `nn.Module` instance: its attribute dict has `_parameters`, `_buffers` and `_modules`. */
export function isModule(o: PyObject): boolean {
  const st = moduleAttrs(o);
  return !!st && st.has('_parameters') && st.has('_modules');
}

function moduleAttrs(o: PyObject): PyDict | null {
  return o.state instanceof PyDict ? o.state : null;
}

/**
 * The state dict `nn.Module.state_dict()` would return, from the pickled attributes alone:
 * parameters, then persistent buffers (those not in `_non_persistent_buffers_set`), then each
 * child module under `<name>.` (torch/nn/modules/module.py, `_save_to_state_dict` and `state_dict`).
 */
export function moduleStateDict(o: PyObject, prefix = '', out: StateDictEntry[] = [], depth = 0): StateDictEntry[] {
  const st = moduleAttrs(o);
  if (!st || depth > 200) return out;
  const params = st.get('_parameters');
  const buffers = st.get('_buffers');
  const nonPersistent = st.get('_non_persistent_buffers_set');
  const skip = new Set(nonPersistent instanceof PySet ? nonPersistent.items.map(String) : []);
  if (params instanceof PyDict) for (const [k, v] of params.entries) if (v instanceof TorchTensor) out.push({ key: prefix + String(k), tensor: v });
  if (buffers instanceof PyDict)
    for (const [k, v] of buffers.entries) if (v instanceof TorchTensor && !skip.has(String(k))) out.push({ key: prefix + String(k), tensor: v });
  const mods = st.get('_modules');
  if (mods instanceof PyDict) {
    for (const [k, v] of mods.entries) if (v instanceof PyObject) moduleStateDict(v, `${prefix}${String(k)}.`, out, depth + 1);
  }
  return out;
}

/**
 * A TorchScript module keeps parameters and buffers as plain attributes of `__torch__.*`
 * objects; their dotted attribute paths are the module's state dict keys.
 */
export function scriptModuleTensors(o: PyObject, prefix = '', out: StateDictEntry[] = [], depth = 0): StateDictEntry[] {
  if (!(o.state instanceof PyDict) || depth > 200) return out;
  for (const [k, v] of o.state.entries) {
    if (v instanceof TorchTensor) out.push({ key: prefix + String(k), tensor: v });
    else if (v instanceof PyObject && v.className.startsWith('__torch__.')) scriptModuleTensors(v, `${prefix}${String(k)}.`, out, depth + 1);
  }
  return out;
}

/**
 * `_version` of torch's module classes where it is not 1: only the class knows it, the pickle
 * does not carry it (torch/nn/modules/batchnorm.py `_NormBase._version = 2`).
 */
const MODULE_VERSIONS: [RegExp, number][] = [[/^torch\.nn\.modules\.(batchnorm|instancenorm)\.\w+$/, 2]];

/**
 * The `_metadata` that `state_dict()` attaches: module path → `{'version': N}`, the module itself
 * before its children (torch/nn/modules/module.py, `state_dict`).
 */
export function moduleMetadata(o: PyObject, prefix = '', out: [string, number][] = [], depth = 0): [string, number][] {
  if (depth > 200 || !(o.state instanceof PyDict)) return out;
  out.push([prefix, MODULE_VERSIONS.find(([re]) => re.test(o.className))?.[1] ?? 1]);
  const mods = o.state.get('_modules');
  if (mods instanceof PyDict) {
    for (const [k, v] of mods.entries) if (v instanceof PyObject) moduleMetadata(v, prefix ? `${prefix}.${String(k)}` : String(k), out, depth + 1);
  }
  return out;
}
