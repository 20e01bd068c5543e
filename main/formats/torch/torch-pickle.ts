import { dtypeByName, dtypeByStorage, type DTypeInfo } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import type { PickleHooks } from '../pickle/unpickler.ts';
import { PyDict, PyGlobal, PyObject, PyTuple, type PyValue } from '../values/python-values.ts';
import { contiguousStrides, TorchStorage, TorchTensor, type TensorKind } from '../values/torch-values.ts';

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
  const bad = (why: string): never => fail('bad-pickle', `${file}: ${fn.name}${why}`, file);
  const storageArg = (v: PyValue): TorchStorage => (v instanceof TorchStorage ? v : bad(' expects a storage as its first argument'));
  const ints = (v: PyValue, what: string): number[] => {
    const items =
      v instanceof PyTuple ? v.items : v instanceof PyObject && v.className === 'torch.Size' && v.args[0] instanceof PyTuple ? v.args[0].items : null;
    if (!items || !items.every((x) => typeof x === 'number')) bad(` ${what} is not a tuple of ints`);
    return items as number[];
  };
  const dense = (kind: TensorKind, dtypeOverride?: DTypeInfo, plainRecipe = false): TorchTensor => {
    const storage = storageArg(args[0]!);
    const offset = args[1];
    if (typeof offset !== 'number') bad(' storage offset is not an int');
    const shape = ints(args[2]!, 'size');
    const stride = ints(args[3]!, 'stride');
    if (shape.length !== stride.length) bad(' size and stride differ in length');
    const dtype = dtypeOverride ?? storage.dtype;
    // null: the tensor rebuilds these very arguments when a writer first asks (see TorchTensor.args)
    const t = new TorchTensor(fn, plainRecipe ? null : args, kind, dtype, shape, stride, offset as number, storage);
    checkBounds(t, file);
    return t;
  };
  if (fn.module !== 'torch._utils' && fn.module !== 'torch._tensor') return undefined;
  switch (fn.name) {
    case '_rebuild_tensor': // (storage, storage_offset, size, stride)
      return dense('dense');
    case '_rebuild_tensor_v2': {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const t = dense('dense', undefined, isPlainV2Recipe(args));
      t.requiresGrad = args[4] === true;
      return t;
    }
    case '_rebuild_tensor_v3': {
      // (..., requires_grad, backward_hooks, dtype[, metadata]): dtypes with no typed storage
      const d = args[6];
      const dtype = d instanceof PyGlobal && d.module === 'torch' ? dtypeByName(d.name) : undefined;
      if (!dtype) bad(' names an unknown dtype');
      const t = dense('dense', dtype);
      t.requiresGrad = args[4] === true;
      return t;
    }
    case '_rebuild_qtensor': {
      // (storage, storage_offset, size, stride, quantizer_params, requires_grad, backward_hooks)
      const t = dense('quantized');
      t.requiresGrad = args[5] === true;
      return t;
    }
    case '_rebuild_parameter': // (data, requires_grad, backward_hooks)
    case '_rebuild_parameter_with_state': {
      // (data, requires_grad, backward_hooks, state)
      const inner = args[0];
      if (!(inner instanceof TorchTensor)) bad(' expects a tensor');
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
      if (!dtype) bad(' names an unknown dtype');
      const t = new TorchTensor(fn, args, 'meta', dtype!, ints(args[1]!, 'size'), ints(args[2]!, 'stride'), 0, null);
      t.requiresGrad = args[3] === true;
      return t;
    }
    case '_rebuild_wrapper_subclass': {
      // (cls, dtype, size, stride, storage_offset, layout, device, requires_grad)
      const d = args[1];
      const dtype = d instanceof PyGlobal ? dtypeByName(d.name) : undefined;
      if (!dtype) bad(' names an unknown dtype');
      const t = new TorchTensor(
        fn,
        args,
        'subclass',
        dtype!,
        ints(args[2]!, 'size'),
        ints(args[3]!, 'stride'),
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
      if (!dtype) bad(' names an unknown dtype');
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
      const shape = sizeArg ? ints(sizeArg, 'size') : first.shape;
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

function wrap(fn: PyGlobal, args: PyValue[], inner: TorchTensor, kind: TensorKind): TorchTensor {
  const t = new TorchTensor(fn, args, kind, inner.dtype, inner.shape, inner.stride, inner.storageOffset, inner.storage);
  t.subclass = inner.subclass;
  t.deviceArg = inner.deviceArg;
  t.components = inner.components;
  return t;
}

/** A view must stay inside its storage; torch itself would fail later with an opaque error. */
function checkBounds(t: TorchTensor, file: string): void {
  if (!t.storage || t.numel === 0) return;
  if (t.shape.some((d) => d < 0) || t.stride.some((s) => s < 0) || t.storageOffset < 0) {
    fail('bad-pickle', `${file}: tensor has a negative size, stride or offset`, file);
  }
  const span = t.storageSpan;
  if (span.offset + span.length > t.storage.nbytes) {
    fail(
      'bad-pickle',
      `${file}: tensor view [${t.shape}] at offset ${t.storageOffset} reaches past its storage ${t.storage.key} (${t.storage.numel} elements)`,
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
