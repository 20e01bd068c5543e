import type { PyValue } from '../formats/values/python-values.ts';
import { copyTree } from './copy-tree.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';

/**
 * A copy of a container tree with some tensors replaced (by object, so a tensor reachable by two
 * paths stays one object). Shared sub-trees stay shared; cycles are kept as cycles.
 */
export function replaceTensors(root: PyValue, replace: (t: TorchTensor) => TorchTensor): PyValue {
  return copyTree(root, { tensor: replace });
}

/** A dotted name for a path, as DCP's `flatten_state_dict` and safetensors name nested tensors. */
export function dottedName(path: (string | number)[]): string {
  return path.map(String).join('.');
}
