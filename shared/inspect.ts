/**
 * The result of inspecting a checkpoint, as `ckpt inspect --json` prints it and as the UI shows
 * it. Plain data: no classes, no Node types.
 */
import type { DevicePlan } from './devices.ts';

export type CheckpointFormatName =
  | 'torch-zip'
  | 'torch-legacy'
  | 'torch-tar'
  | 'torchscript'
  | 'safetensors'
  | 'npz'
  | 'npy'
  | 'pickle'
  | 'dcp'
  | 'deepspeed'
  | 'onnx';
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
  /**
   * In a whole pickled module: where `state_dict()` puts it (the module's path, then its key:
   * `conv1.weight` for `_modules/conv1/_parameters/weight`). Absent elsewhere.
   */
  statePath?: (string | number)[];
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
  /** byte offset, inside its pickle, of the opcode that decided the class */
  offset?: number;
  /** which pickle of the file, e.g. `archive/data.pkl` */
  record?: string;
}

/** What one torch version's `torch.load(f, weights_only=True)` does with the file. */
export interface WeightsOnlyVerdict {
  loads: boolean;
  /** the first thing it refuses, when it does */
  refusal?: string;
}

export interface WeightsOnlyReport extends WeightsOnlyVerdict {
  /** the non-allowlisted globals (torch.serialization.get_unsafe_globals_in_checkpoint): what `add_safe_globals` would need */
  unsupported: string[];
  /** per torch version checked: `2.13`, `1.13` */
  byTorch: Record<string, WeightsOnlyVerdict>;
}

export interface SecurityReport {
  verdict: SecurityClass;
  globals: SecurityGlobal[];
  /** true when plain `torch.load(f, weights_only=True)` could load it */
  weightsOnlyLoadable: boolean;
  weightsOnly?: WeightsOnlyReport;
  /** which torch versions the verdict was checked for, in words */
  holdsFor?: string;
  /** how the file's pickles were reached, and anything torch would not reach */
  notes?: string[];
}

export interface ScalarValue {
  path: (string | number)[];
  /** `int`, `float`, `str`, `bool`, `None`, `numpy.float64`, ... */
  type: string;
  text: string;
}

/** What loads a file in Python. Every field is what real torch does (test/interop/load-claims.test.ts). */
export interface LoadClaims {
  /** `torch.load(f, weights_only=True)` loads it in torch 2.x */
  weightsOnly: boolean;
  /** plain `torch.load(f)` reads the file (given the classes it names), as opposed to another loader */
  torchLoad: boolean;
  /** the Python line that loads it */
  how: string;
  /** why `torch.load(f, weights_only=True)` refuses it, when it does */
  why: string | null;
  /** whether `ckpt convert` rewrites it (its device tags and keys) */
  convertible: boolean;
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
  /** non-tensor values (epoch, best_acc, lr), decoded; numpy scalars as their numbers */
  values?: ScalarValue[];
  /** what loads the file in Python, checked against torch 1.13 and 2.x (see main/checkpoint/load-claims.ts) */
  loading?: LoadClaims;
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
