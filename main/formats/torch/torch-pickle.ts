import { dtypeByName, dtypeByStorage, type DTypeInfo } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import type { PickleHooks } from '../pickle/unpickler.ts';
import { PyDict, PyGlobal, PyObject, PyTuple, type PyValue } from '../values/python-values.ts';
import { contiguousStrides, internDims, TorchStorage, TorchTensor, type TensorKind } from '../values/torch-values.ts';
import { inheritWithConstants } from '../values/header-values.ts';

/** A storage persistent id, decoded: `('storage', storage_type, key, location, numel[, view_metadata])`. */
export interface StorageId {
  storageType: string;
  storageModule: string;
  dtype: DTypeInfo;
  key: string;
  location: string;
  numel: number;
  /** legacy format only: `(view_key, offset, view_size)` when the storage is a view of another */
  view: { key: string; offset: number; numel: number } | null;
}

/**
 * Decodes a storage persistent id. torch/serialization.py writes
 * `('storage', storage_type, key, location, numel)` in `_save` and, in `_legacy_save`, a sixth
 * element `view_metadata`. `storage_type` is `torch.UntypedStorage` for untyped storages, whose
 * dtype is uint8 (`_load`, `persistent_load`).
 */
export function decodeStorageId(pid: PyValue, file: string): StorageId {
  if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage') {
    fail('bad-pickle', `${file}: persistent id ${describe(pid)} is not a torch storage`, file);
  }
  const [, type, key, location, numel, viewMeta] = pid.items;
  return storageIdOf(type, key, location, numel, viewMeta, file);
}

/** `decodeStorageId` of a persistent id's items after `'storage'`, as a reader that never built the tuple has them (`fast-items.ts`). */
export function storageIdOf(
  type: PyValue | undefined,
  key: PyValue | undefined,
  location: PyValue | undefined,
  numel: PyValue | undefined,
  viewMeta: PyValue | undefined,
  file: string,
): StorageId {
  if (!(type instanceof PyGlobal)) fail('bad-pickle', `${file}: storage type in persistent id is not a class`, file);
  const dtype = dtypeByStorage(type.name);
  if (!dtype) fail('unsupported', `${file}: storage class ${type.fullName} is unknown`, file);
  const k = typeof key === 'string' ? key : typeof key === 'number' || typeof key === 'bigint' ? String(key) : null;
  if (k === null) fail('bad-pickle', `${file}: storage key is not a string`, file);
  if (typeof location !== 'string') fail('bad-pickle', `${file}: storage location is not a string`, file);
  if (typeof numel !== 'number' || numel < 0) fail('bad-pickle', `${file}: storage size ${String(numel)} is not a valid element count`, file);
  let view: StorageId['view'] = null;
  if (viewMeta instanceof PyTuple) {
    const [vk, off, vn] = viewMeta.items;
    if (typeof off !== 'number' || typeof vn !== 'number') fail('bad-pickle', `${file}: storage view metadata is malformed`, file);
    view = { key: String(vk), offset: off, numel: vn };
  }
  return { storageType: type.name, storageModule: type.module, dtype, key: k, location, numel, view };
}

/**
 * Hooks that turn torch's reduce recipes into `TorchTensor`s (torch/_utils.py `_rebuild_*`,
 * torch/_tensor.py `_rebuild_from_type_v2`). Each tensor keeps its exact recipe.
 */
export function torchPickleHooks(file: string, loadStorage: (pid: PyValue) => TorchStorage): PickleHooks {
  return {
    persistentLoad: loadStorage,
    call: (fn, args) => {
      if (!(fn instanceof PyGlobal)) return undefined;
      if (fn.fullName === PARAMETER && args[0] instanceof TorchTensor) {
        // Parameter(data[, requires_grad]) by NEWOBJ/REDUCE (torch 2.x weights-only form and old files).
        const t = wrap(fn, args, args[0], args[0].kind);
        t.isParameter = true;
        t.requiresGrad = args[1] !== false;
        return t;
      }
      return rebuildTensor(fn, args, file);
    },
    build: (target, state) => legacyTensorBuild(target, state, file),
  };
}

const LEGACY_TENSOR_CLASS = /^torch(\.cuda)?\.[A-Za-z0-9]*Tensor$/;

/**
 * torch 0.1.x–0.3 pickled tensors as `torch.FloatTensor()` followed by BUILD with
 * `(storage, storage_offset, size, stride)`, which `Tensor.__setstate__` applies with `set_`
 * (the "Legacy unpickling" branch of torch/_weights_only_unpickler.py). Parameters of that era
 * BUILD with `(requires_grad, volatile, backward_hooks)`.
 */
function legacyTensorBuild(target: PyValue, state: PyValue, file: string): true | PyValue | undefined {
  if (target instanceof TorchTensor) {
    if (state instanceof PyTuple && typeof state.items[0] === 'boolean') target.requiresGrad = state.items[0];
    else target.pyState = state;
    return true;
  }
  if (
    target instanceof PyObject &&
    LEGACY_TENSOR_CLASS.test(target.className) &&
    target.args.length === 0 &&
    state instanceof PyTuple &&
    state.items[0] instanceof TorchStorage
  ) {
    const [storage, offset, size, stride] = state.items;
    return rebuildTensor(
      new PyGlobal('torch._utils', '_rebuild_tensor_v2'),
      [storage, offset ?? 0, size ?? new PyTuple([]), stride ?? new PyTuple([]), false, new PyDict(true)],
      file,
    );
  }
  return undefined;
}

const PARAMETER = 'torch.nn.parameter.Parameter';

export function rebuildTensor(fn: PyGlobal, args: PyValue[], file: string): TorchTensor | undefined {
  if (fn.module !== 'torch._utils' && fn.module !== 'torch._tensor') return undefined;
  switch (fn.name) {
    case '_rebuild_tensor': // (storage, storage_offset, size, stride)
      return denseTensor(fn, args, file, 'dense');
    case '_rebuild_tensor_v2': {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const t = denseTensor(fn, args, file, 'dense', undefined, isPlainV2Recipe(args));
      if (args[4] === true) t.requiresGrad = true; // false is every tensor's default: a plain one keeps no field for it
      return t;
    }
    case '_rebuild_tensor_v3': {
      // (..., requires_grad, backward_hooks, dtype[, metadata]): dtypes with no typed storage
      const d = args[6];
      const dtype = d instanceof PyGlobal && d.module === 'torch' ? dtypeByName(d.name) : undefined;
      if (!dtype) rebuildFailed(fn, file, ' names an unknown dtype');
      const t = denseTensor(fn, args, file, 'dense', dtype);
      t.requiresGrad = args[4] === true;
      return t;
    }
    case '_rebuild_qtensor': {
      // (storage, storage_offset, size, stride, quantizer_params, requires_grad, backward_hooks)
      const t = denseTensor(fn, args, file, 'quantized');
      t.requiresGrad = args[5] === true;
      return t;
    }
    case '_rebuild_parameter': // (data, requires_grad, backward_hooks)
    case '_rebuild_parameter_with_state': {
      // (data, requires_grad, backward_hooks, state)
      const inner = args[0];
      if (!(inner instanceof TorchTensor)) rebuildFailed(fn, file, ' expects a tensor');
      const t = wrap(fn, args, inner as TorchTensor, (inner as TorchTensor).kind);
      t.isParameter = true;
      t.requiresGrad = args[1] === true;
      if (fn.name === '_rebuild_parameter_with_state') t.pyState = args[3];
      return t;
    }
    case '_rebuild_from_type': // (func, type, args, dict)
    case '_rebuild_from_type_v2': {
      // (func, new_type, args, state): func(*args), then as_subclass(new_type)
      const [func, newType, innerArgs, state] = args;
      if (!(func instanceof PyGlobal) || !(innerArgs instanceof PyTuple)) return undefined;
      const inner = rebuildTensor(func, innerArgs.items, file);
      if (!inner) return undefined;
      const cls = newType instanceof PyGlobal ? newType.fullName : '';
      const isParam = cls === PARAMETER;
      const plain = cls === 'torch.Tensor' || isParam;
      const t = wrap(fn, args, inner, plain ? inner.kind : 'subclass');
      t.isParameter = isParam || inner.isParameter;
      t.requiresGrad = inner.requiresGrad;
      t.pyState = state;
      t.subclass = plain ? null : cls;
      return t;
    }
    case '_rebuild_meta_tensor_no_storage': {
      // (dtype, size, stride, requires_grad)
      const d = args[0];
      const dtype = d instanceof PyGlobal ? dtypeByName(d.name) : undefined;
      if (!dtype) rebuildFailed(fn, file, ' names an unknown dtype');
      const t = new TorchTensor(fn, args, 'meta', dtype!, intsArg(args[1]!, 'size', fn, file), intsArg(args[2]!, 'stride', fn, file), 0, null);
      t.requiresGrad = args[3] === true;
      return t;
    }
    case '_rebuild_wrapper_subclass': {
      // (cls, dtype, size, stride, storage_offset, layout, device, requires_grad)
      const d = args[1];
      const dtype = d instanceof PyGlobal ? dtypeByName(d.name) : undefined;
      if (!dtype) rebuildFailed(fn, file, ' names an unknown dtype');
      const t = new TorchTensor(
        fn,
        args,
        'subclass',
        dtype!,
        intsArg(args[2]!, 'size', fn, file),
        intsArg(args[3]!, 'stride', fn, file),
        typeof args[4] === 'number' ? args[4] : 0,
        null,
      );
      t.subclass = args[0] instanceof PyGlobal ? args[0].fullName : null;
      t.requiresGrad = args[7] === true;
      t.deviceArg = deviceText(args[6]);
      return t;
    }
    case '_rebuild_device_tensor_from_numpy': // (data, dtype, device, requires_grad)
    case '_rebuild_device_tensor_from_cpu_tensor':
    case '_rebuild_xla_tensor':
    case '_rebuild_mlc_tensor': {
      const inner = args[0];
      const d = args[1];
      const dtype = d instanceof PyGlobal ? dtypeByName(d.name) : undefined;
      if (!dtype) rebuildFailed(fn, file, ' names an unknown dtype');
      const shape = inner instanceof TorchTensor ? inner.shape : [];
      const t = new TorchTensor(
        fn,
        args,
        inner instanceof TorchTensor ? 'other' : 'numpy',
        dtype!,
        shape,
        contiguousStrides(shape),
        0,
        inner instanceof TorchTensor ? inner.storage : null,
      );
      t.requiresGrad = args[3] === true;
      t.deviceArg = deviceText(args[2]);
      return t;
    }
    case '_rebuild_sparse_tensor': // (layout, data): data = (indices, values, size[, check_invariants])
    case '_rebuild_sparse_csr_tensor':
    case '_rebuild_nested_tensor': {
      // (buffer, sizes, strides, storage_offsets)
      const parts = fn.name === '_rebuild_nested_tensor' ? args : args[1] instanceof PyTuple ? args[1].items : [];
      const first = parts.find((p): p is TorchTensor => p instanceof TorchTensor);
      if (!first) return undefined;
      const sizeArg =
        fn.name === '_rebuild_nested_tensor' ? null : parts.find((p) => p instanceof PyTuple || (p instanceof PyObject && p.className === 'torch.Size'));
      const shape = sizeArg ? intsArg(sizeArg, 'size', fn, file) : first.shape;
      const t = new TorchTensor(
        fn,
        args,
        fn.name === '_rebuild_nested_tensor' ? 'nested' : 'sparse',
        first.dtype,
        shape,
        contiguousStrides(shape),
        0,
        first.storage,
      );
      t.components = parts.filter((p): p is TorchTensor => p instanceof TorchTensor);
      return t;
    }
  }
  return undefined;
}

/**
 * `_rebuild_tensor_v2(storage, offset, (size), (stride), False, OrderedDict())` exactly as
 * `torch.save` writes a plain tensor (torch/_tensor.py `_reduce_ex_internal`: a fresh, empty
 * `backward_hooks` per tensor). Such a tensor need not keep its argument list, two tuples and a
 * dict (about 260 bytes per tensor of a 100,000-tensor file): `TorchTensor.args` builds the same
 * list when a writer asks. Anything else (requires_grad, hooks, metadata, a `torch.Size`) keeps
 * the arguments as read.
 */
function isPlainV2Recipe(args: PyValue[]): boolean {
  const hooks = args[5];
  return (
    args.length === 6 &&
    args[0] instanceof TorchStorage &&
    args[2] instanceof PyTuple &&
    args[3] instanceof PyTuple &&
    args[4] === false &&
    hooks instanceof PyDict &&
    hooks.ordered &&
    hooks.size === 0 &&
    hooks.attrs === null
  );
}

function rebuildFailed(fn: PyGlobal, file: string, why: string): never {
  return fail('bad-pickle', `${file}: ${fn.name}${why}`, file);
}

/** A size or stride argument: a tuple of ints, or a `torch.Size` of one. */
function intsArg(v: PyValue, what: string, fn: PyGlobal, file: string): number[] {
  const items = v instanceof PyTuple ? v.items : v instanceof PyObject && v.className === 'torch.Size' && v.args[0] instanceof PyTuple ? v.args[0].items : null;
  if (items) {
    let allInts = true;
    for (const x of items) if (typeof x !== 'number') allInts = false;
    if (allInts) return items as number[];
  }
  return rebuildFailed(fn, file, ` ${what} is not a tuple of ints`);
}

/** A tensor over a storage: `(storage, storage_offset, size, stride, ...)`, module-level so that 100,000 calls make no closures. */
function denseTensor(fn: PyGlobal, args: PyValue[], file: string, kind: TensorKind, dtypeOverride?: DTypeInfo, plainRecipe = false): TorchTensor {
  const storage = args[0];
  if (!(storage instanceof TorchStorage)) return rebuildFailed(fn, file, ' expects a storage as its first argument');
  const offset = args[1];
  if (typeof offset !== 'number') rebuildFailed(fn, file, ' storage offset is not an int');
  const shape = intsArg(args[2]!, 'size', fn, file);
  const stride = intsArg(args[3]!, 'stride', fn, file);
  return tensorOverStorage(fn, plainRecipe ? null : args, kind, dtypeOverride ?? storage.dtype, shape, stride, offset as number, storage, file);
}

/**
 * `_rebuild_tensor_v2(storage, offset, (size), (stride), False, OrderedDict())`, the plain recipe
 * (`isPlainV2Recipe`), from its parts: for a reader that never built the argument tuples
 * (`fast-items.ts`). The tensor is the one `rebuildTensor` makes of those arguments.
 */
export function plainTensorV2(fn: PyGlobal, storage: TorchStorage, offset: number, shape: number[], stride: number[], file: string): TorchTensor {
  return tensorOverStorage(fn, null, 'dense', storage.dtype, shape, stride, offset, storage, file);
}

function tensorOverStorage(
  fn: PyGlobal,
  args: PyValue[] | null,
  kind: TensorKind,
  dtype: DTypeInfo,
  shape: number[],
  stride: number[],
  offset: number,
  storage: TorchStorage,
  file: string,
): TorchTensor {
  if (shape.length !== stride.length) rebuildFailed(fn, file, ' size and stride differ in length');
  // null args: the tensor rebuilds the plain recipe's arguments when a writer first asks (see TorchTensor.args)
  const t =
    args === null && kind === 'dense'
      ? plainPickledTensor(fn, dtype, shape, stride, offset, storage)
      : new TorchTensor(fn, args, kind, dtype, shape, stride, offset, storage);
  checkBounds(t, file);
  return t;
}

/** Own fields of a tensor of the plain recipe (`isPlainV2Recipe`); the rest are `PLAIN_TENSOR_CONSTANTS`. */
class PlainTensorFields {
  readonly shape: number[];
  readonly stride: number[];
  constructor(
    readonly rebuild: PyGlobal,
    readonly dtype: DTypeInfo,
    shape: number[],
    stride: number[],
    readonly storageOffset: number,
    readonly storage: TorchStorage,
  ) {
    this.shape = internDims(shape);
    this.stride = internDims(stride);
  }
}

/**
 * The fields of a `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` tensor
 * (torch/_utils.py) that every such tensor has alike. Writable: a BUILD or a Parameter that sets
 * one gives that tensor a field of its own.
 */
const PLAIN_TENSOR_CONSTANTS = { kind: 'dense', requiresGrad: false, isParameter: false, rare: null, recipeArgs: null } as const;

inheritWithConstants(PlainTensorFields, TorchTensor, PLAIN_TENSOR_CONSTANTS, true);

/**
 * A tensor of the plain recipe as one object of the 6 fields that differ (72 bytes, a TorchTensor
 * is 112): a 100,000-tensor state dict keeps all of them to the end, copied by every scavenge.
 */
function plainPickledTensor(fn: PyGlobal, dtype: DTypeInfo, shape: number[], stride: number[], offset: number, storage: TorchStorage): TorchTensor {
  return new PlainTensorFields(fn, dtype, shape, stride, offset, storage) as unknown as TorchTensor;
}

function wrap(fn: PyGlobal, args: PyValue[], inner: TorchTensor, kind: TensorKind): TorchTensor {
  const t = new TorchTensor(fn, args, kind, inner.dtype, inner.shape, inner.stride, inner.storageOffset, inner.storage);
  t.subclass = inner.subclass;
  t.deviceArg = inner.deviceArg;
  t.components = inner.components;
  return t;
}

/** A view must stay inside its storage; torch itself would fail later with an opaque error. */
function checkBounds(t: TorchTensor, file: string): void {
  const storage = t.storage;
  if (!storage) return;
  // `numel`, the signs and `storageSpan` in one loop without an object: this runs once per tensor
  const { shape, stride, storageOffset } = t;
  let numel = 1;
  let negative = storageOffset < 0;
  let last = storageOffset;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    numel *= d;
    if (d < 0) negative = true;
    last += (d - 1) * stride[i]!;
  }
  if (numel === 0) return;
  for (const s of stride) if (s < 0) negative = true;
  if (negative) fail('bad-pickle', `${file}: tensor has a negative size, stride or offset`, file);
  const size = t.dtype.size;
  if (storageOffset * size + (last - storageOffset + 1) * size > storage.nbytes) {
    fail(
      'bad-pickle',
      `${file}: tensor view [${t.shape}] at offset ${t.storageOffset} reaches past its storage ${storage.key} (${storage.numel} elements)`,
      file,
    );
  }
}

/** `torch.device('cuda', 3)`, `torch.device('cuda:3')` or a plain string → `cuda:3`. */
export function deviceText(v: PyValue | undefined): string | null {
  if (typeof v === 'string') return v;
  if (v instanceof PyObject && v.className === 'torch.device') {
    const [type, index] = v.args;
    if (typeof type === 'string') return typeof index === 'number' ? `${type}:${index}` : type;
  }
  return null;
}

function describe(v: PyValue): string {
  if (v instanceof PyTuple) return `(${v.items.map((x) => (typeof x === 'string' ? `'${x}'` : typeof x)).join(', ')})`;
  return typeof v === 'object' && v ? v.constructor.name : String(v);
}

/** An empty `OrderedDict()` as torch passes for `backward_hooks`. */
export function emptyHooks(): PyDict {
  return new PyDict(true);
}
