/**
 * The result of inspecting a checkpoint, as `ckpt inspect --json` prints it and as the UI shows
 * it. Plain data: no classes, no Node types.
 */
import type { DevicePlan } from './devices.ts';

export type CheckpointFormatName = 'torch-zip' | 'torch-legacy' | 'torch-tar' | 'torchscript' | 'safetensors' | 'npz' | 'npy' | 'pickle' | 'dcp' | 'deepspeed';
export type LayoutKind = 'cpu' | 'single-gpu' | 'dp' | 'ddp' | 'mixed';
export type SecurityClass = 'safe' | 'benign' | 'unknown-class' | 'dangerous';

export interface LayoutVerdict {
  kind: LayoutKind;
  /** stacked wrapper prefixes shared by every model key, outermost first */
  prefixes: string[];
  /** device tag → number of tensors */
  devices: Record<string, number>;
  /** why the verdict was reached, one line each */
  evidence: string[];
}

export interface TensorInfo {
  /** container keys from the root: dict keys, list indexes, attribute names */
  path: (string | number)[];
  dtype: string;
  shape: number[];
  stride: number[];
  storageOffset: number;
  device: string;
  nbytes: number;
  requiresGrad: boolean;
  isParameter: boolean;
  /** storage key inside the file */
  storage: string | null;
  /** true when another tensor (or another path to this one) uses the same storage */
  shared: boolean;
  kind: string;
}

export interface SecurityGlobal {
  name: string;
  class: SecurityClass;
  /** why it got that class */
  reason: string;
  /** times it was called while unpickling (0: only referenced) */
  calls: number;
  /** the first call as Python-like text, e.g. `posix.system("echo pwned")`; never executed */
  example?: string;
}

export interface SecurityReport {
  verdict: SecurityClass;
  globals: SecurityGlobal[];
  /** true when plain `torch.load(f, weights_only=True)` could load it */
  weightsOnlyLoadable: boolean;
}

export interface RoleInfo {
  kind: 'state-dict' | 'optimizer' | 'lightning' | 'module' | 'shard';
  path: (string | number)[];
  keys?: number;
  className?: string;
  note?: string;
}

export interface TreeNode {
  key: string | number;
  /** `dict`, `OrderedDict`, `list`, `tuple`, `tensor`, `int`, `str`, a class name, ... */
  type: string;
  /** a short value text for leaves, a size for containers */
  summary: string;
  children?: TreeNode[];
  /** children left out for brevity */
  more?: number;
}

export interface InspectReport {
  file: string;
  fileBytes: number;
  format: CheckpointFormatName;
  records: Record<string, string>;
  layout: LayoutVerdict;
  roles: RoleInfo[];
  tensors: TensorInfo[];
  totals: {
    tensors: number;
    storages: number;
    /** bytes of all distinct storages */
    storageBytes: number;
    byDtype: Record<string, { tensors: number; bytes: number }>;
    byDevice: Record<string, { tensors: number; bytes: number }>;
  };
  /** for whole pickled modules: the state dict keys torch would produce */
  moduleStateDicts?: { path: (string | number)[]; className: string; keys: string[] }[];
  security: SecurityReport;
  tree: TreeNode;
  notes: string[];
  /** whether the device tags load on this machine as they are, and the fix if not (CLI `inspect`) */
  devicePlan?: DevicePlan;
}

export interface TensorStats {
  dtype: string;
  numel: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  nan: number;
  inf: number;
  /** histogram over [min, max] of the finite values */
  histogram: { lo: number; hi: number; counts: number[] } | null;
  /** values not shown because the dtype is not numeric here (e.g. quantized) */
  note?: string;
}
