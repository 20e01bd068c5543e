import type { KeyShape } from '../../shared/fit.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';
import { moduleMetadata, type Role } from '../checkpoint/roles.ts';
import { valueAt } from '../checkpoint/tree.ts';
import { fail } from '../errors.ts';
import { PyDict, PyObject } from '../formats/values/python-values.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import { primaryModel } from '../verify/checkpoint-weights.ts';
import type { LoadSource } from './strict-load.ts';

/** The model state dict of a checkpoint, as `load_state_dict` would receive it. */
export interface ModelState extends LoadSource {
  role: Role;
  tensors: Map<string, TorchTensor>;
}

/**
 * The state dict (or whole pickled module) with the most tensors, wherever it sits in the
 * container (`state_dict`, `model`, `model_state_dict`, `ema`, …), with its keys, shapes and the
 * `_metadata` versions `state_dict()` attached.
 */
export function modelState(ck: Checkpoint): ModelState {
  const role = primaryModel(ck.roles);
  if (!role) fail('unsupported', `${ck.file}: no model state dict or pickled module found in it`, ck.file);
  const entries: KeyShape[] = [];
  const tensors = new Map<string, TorchTensor>();
  for (const e of role.entries ?? []) {
    if (tensors.has(e.key)) continue;
    tensors.set(e.key, e.tensor);
    entries.push({ key: e.key, shape: [...e.tensor.shape] });
  }
  const holder = valueAt(ck.reading.root, role.path);
  let versions: Map<string, number> | null = null;
  if (holder instanceof PyObject) versions = new Map(moduleMetadata(holder).map(([p, v]) => [p, v]));
  else if (holder instanceof PyDict) {
    const meta = holder.attrs?.get('_metadata');
    if (meta instanceof PyDict) {
      versions = new Map();
      for (const [k, v] of meta.entries) {
        const version = v instanceof PyDict ? v.get('version') : undefined;
        if (typeof version === 'number') versions.set(String(k), version);
      }
    }
  }
  return { role, entries, tensors, versions };
}

/** Other state dicts of the same size (an EMA copy beside the model): worth a note. */
export function otherModelRoles(ck: Checkpoint, chosen: Role): Role[] {
  return ck.roles.filter((r) => r !== chosen && (r.kind === 'state-dict' || r.kind === 'module') && (r.entries?.length ?? 0) === (chosen.entries?.length ?? 0));
}
