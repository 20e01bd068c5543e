import type { ConversionRules } from '../../shared/presets.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';
import { moduleMetadata, moduleStateDict } from '../checkpoint/roles.ts';
import { PyDict, PyObject, type PyValue } from '../formats/values/python-values.ts';
import { copyTree, type CopyHooks } from '../checkpoint/copy-tree.ts';
import { valueAt } from '../checkpoint/tree.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { addedModulePaths } from './key-rules.ts';
import { primaryStateDict, WRAPPER_CLASSES, type RoleMapping } from './plan.ts';

/**
 * The object to pickle for one output: the source tree with every recognised state dict re-keyed
 * (and its `_metadata` kept consistent), modules exported or unwrapped as the rules say, and all
 * other content carried over unchanged. Tensors are the source's own objects: their storages get
 * new device tags and keys when they are written.
 */
export function buildOutputTree(ck: Checkpoint, rules: ConversionRules, roles: RoleMapping[]): PyValue {
  const byDict = new Map<object, RoleMapping>();
  const byModule = new Map<object, RoleMapping>();
  for (const r of roles) {
    const v = valueAt(ck.reading.root, r.role.path);
    if (v && typeof v === 'object') (r.role.kind === 'module' ? byModule : byDict).set(v, r);
  }
  const hooks: CopyHooks = {
    dict: (v, copy) => {
      const role = byDict.get(v);
      if (!role) return undefined;
      // a state dict of tensors whose every key stays (and whose _metadata, if any, stays too:
      // `state_dict()` always has one) is written as it is: no copy of its 500,000 entries and
      // their index; nothing after this changes a dict in place
      if (
        v.entries.every(([k, x]) => typeof k === 'string' && x instanceof TorchTensor && role.mapper.map(k) === k) &&
        (!v.attrs || metadataStays(v.attrs, role, rules))
      )
        return v;
      const d = new PyDict(v.ordered);
      for (const [k, x] of v.entries) {
        if (typeof k === 'string' && x instanceof TorchTensor) {
          const nk = role.mapper.map(k);
          if (nk !== null) d.set(nk, x);
        } else d.set(copy(k), copy(x));
      }
      if (v.attrs) d.attrs = remapMetadata(v.attrs, role, rules, copy);
      return d;
    },
    object: (v, copy) => {
      const role = byModule.get(v);
      if (role) return exportModule(v, role, copy);
      const inner = rules.preset && (rules.preset.name === 'cpu' || rules.preset.name === 'gpu') ? unwrapModule(v) : null;
      return inner ? copy(inner) : undefined;
    },
  };

  const exportModule = (m: PyObject, role: RoleMapping, copy: (v: PyValue) => PyValue): PyDict => {
    const d = new PyDict(true);
    for (const { key, tensor } of moduleStateDict(m)) {
      const nk = role.mapper.map(key);
      if (nk !== null) d.set(nk, detached(tensor));
    }
    // the `_metadata` state_dict() would attach, moved with the keys like any state dict's
    const meta = new PyDict(true);
    for (const [p, version] of moduleMetadata(m)) {
      const v = new PyDict();
      v.set('version', version);
      meta.set(p, v);
    }
    const attrs = new PyDict();
    attrs.set('_metadata', meta);
    d.attrs = remapMetadata(attrs, role, rules, copy);
    return d;
  };

  if (rules.unwrap) {
    const primary = primaryStateDict(roles);
    if (primary) return copyTree(valueAt(ck.reading.root, primary.role.path) as PyValue, hooks);
  }
  return copyTree(ck.reading.root, hooks);
}

/** `DataParallel(model)` → `model`, for whole pickled modules under cpu/gpu presets. */
function unwrapModule(o: PyObject): PyObject | null {
  const child = WRAPPER_CLASSES[o.className];
  if (!child || !(o.state instanceof PyDict)) return null;
  const mods = o.state.get('_modules');
  const inner = mods instanceof PyDict ? mods.get(child) : undefined;
  return inner instanceof PyObject ? inner : null;
}

/**
 * True when `remapMetadata` would give back what `attrs` holds: only `_metadata`, every module
 * path kept as it is, none added, and each entry plain `{'version': n}`-style data.
 */
function metadataStays(attrs: PyDict, role: RoleMapping, rules: ConversionRules): boolean {
  if (addedModulePaths(rules).length) return false;
  const pathStays = ([path, entry]: [PyValue, PyValue]): boolean => typeof path === 'string' && role.mapper.mapModulePath(path) === path && isPlainData(entry);
  return attrs.entries.every(([k, meta]) => k === '_metadata' && meta instanceof PyDict && meta.entries.every(pathStays));
}

/** A dict of str keys and scalar values (a `_metadata` entry such as `{'version': 1}`), which a copy would only repeat. */
function isPlainData(v: PyValue): boolean {
  const scalar = (x: PyValue): boolean => x === null || typeof x === 'number' || typeof x === 'string' || typeof x === 'boolean';
  return v instanceof PyDict && !v.attrs && v.entries.every(([a, b]) => typeof a === 'string' && scalar(b));
}

/**
 * `_metadata` maps module paths to `{'version': N}`. Its keys move with the state dict's keys;
 * the wrapper's own root entry goes when its prefix goes, and a root entry is added when a
 * wrapper prefix is added (as `nn.DataParallel(model).state_dict()` has).
 */
function remapMetadata(attrs: PyDict, role: RoleMapping, rules: ConversionRules, copy: (v: PyValue) => PyValue): PyDict {
  const out = new PyDict(attrs.ordered);
  for (const [k, v] of attrs.entries) {
    if (k !== '_metadata' || !(v instanceof PyDict)) {
      out.set(k, copy(v));
      continue;
    }
    const meta = new PyDict(v.ordered);
    meta.attrs = v.attrs;
    const added = addedModulePaths(rules);
    const rootVersion = v.get('') ?? v.entries[0]?.[1] ?? null;
    for (const p of added) meta.set(p, copy(rootVersion));
    for (const [mk, mv] of v.entries) {
      const nk = role.mapper.mapModulePath(String(mk));
      if (nk !== null && !meta.has(nk)) meta.set(nk, copy(mv));
    }
    out.set(k, meta);
  }
  return out;
}

/**
 * `state_dict()` holds `param.detach()`: plain tensors with requires_grad False, not Parameters.
 * A Parameter's recipe `_rebuild_parameter(data, requires_grad, hooks)` already carries the
 * detached `data` (torch/_tensor.py `Parameter.__reduce_ex__`).
 */
export function detached(t: TorchTensor): TorchTensor {
  const inner = t.args[0];
  if (t.isParameter && inner instanceof TorchTensor && !inner.isParameter) return detached(inner);
  if (!t.requiresGrad || t.rebuild.name !== '_rebuild_tensor_v2') return t;
  const args = [...t.args];
  args[4] = false;
  return new TorchTensor(t.rebuild, args, t.kind, t.dtype, t.shape, t.stride, t.storageOffset, t.storage);
}

/**
 * Checks the built tree against the plan: every key the plan keeps is in the tree, under its new
 * name, so verifying the written file against the tree also verifies it against the plan.
 * Returns the first problem, or null.
 */
export function planCoverageProblem(tree: PyValue, roles: RoleMapping[], rules: ConversionRules): string | null {
  const primary = rules.unwrap ? primaryStateDict(roles) : undefined;
  for (const r of roles) {
    if (rules.unwrap && r !== primary) continue;
    const base = rules.unwrap ? [] : r.role.path;
    const dict = valueAt(tree, base);
    if (!(dict instanceof PyDict)) return `the state dict planned at ${base.join('/') || 'the top level'} is not in the output`;
    for (const k of r.plan.keys) {
      if (k.to !== null && !(dict.get(k.to) instanceof TorchTensor)) return `planned key ${k.to} (from ${k.from}) is not in the output`;
    }
  }
  return null;
}
