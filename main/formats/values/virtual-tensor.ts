import { dtypeByName, storageClassFor, type DTypeInfo } from '../../../shared/dtypes.ts';
import { PyDict, PyGlobal, PyTuple, type PyValue } from './python-values.ts';
import { AssembledSource, SourceReader, type TensorSource } from './tensor-source.ts';
import { contiguousStrides, REBUILD_TENSOR_V2, TorchStorage, TorchTensor } from './torch-values.ts';

const REBUILD_TENSOR_V3 = new PyGlobal('torch._utils', '_rebuild_tensor_v3');

/**
 * A storage whose bytes are produced by a source (an assembled or cut tensor) when the writer
 * streams it. Dtypes with a legacy storage class get it (`FloatStorage`); the others are an
 * `UntypedStorage` of bytes, as torch's `persistent_id` records them (torch/serialization.py `_save`).
 */
export function sourceStorage(key: string, source: TensorSource, location: string): TorchStorage {
  const nbytes = source.numel * source.dtype.size;
  const cls = storageClassFor(source.dtype.name);
  const locate = () => ({ reader: new SourceReader(source, `${source.describe()}`), offset: 0, length: nbytes });
  const s = cls
    ? new TorchStorage(key, cls, source.dtype, location, source.numel, locate)
    : new TorchStorage(key, 'UntypedStorage', dtypeByName('uint8')!, location, nbytes, locate);
  sources.set(s, source);
  return s;
}

const sources = new WeakMap<TorchStorage, TensorSource>();

/** The source a virtual storage streams from (for verifying assembled tensors piece by piece). */
export function sourceOf(s: TorchStorage): TensorSource | undefined {
  return sources.get(s);
}

/** The assembly behind a virtual storage, when it is one. */
export function assemblyOf(s: TorchStorage): AssembledSource | undefined {
  const src = sources.get(s);
  return src instanceof AssembledSource ? src : undefined;
}

/**
 * A plain contiguous tensor over a whole storage, recorded as torch records it:
 * `_rebuild_tensor_v2(storage, 0, size, stride, requires_grad, OrderedDict())`, or
 * `_rebuild_tensor_v3(..., dtype)` when the storage is untyped (torch/_tensor.py `_reduce_ex_internal`).
 */
export function plainTensor(dtype: DTypeInfo, shape: number[], storage: TorchStorage, requiresGrad = false): TorchTensor {
  const stride = contiguousStrides(shape);
  const untyped = storage.storageType === 'UntypedStorage' && dtype.name !== 'uint8';
  const args: PyValue[] = [storage, 0, new PyTuple(shape), new PyTuple(stride), requiresGrad, new PyDict(true)];
  if (untyped) args.push(new PyGlobal('torch', dtype.name));
  const t = new TorchTensor(untyped ? REBUILD_TENSOR_V3 : REBUILD_TENSOR_V2, args, 'dense', dtype, shape, stride, 0, storage);
  t.requiresGrad = requiresGrad;
  return t;
}

/** A plain tensor whose bytes come from `source` (row-major, contiguous). */
export function sourceTensor(key: string, source: TensorSource, location: string, requiresGrad = false): TorchTensor {
  return plainTensor(source.dtype, [...source.shape], sourceStorage(key, source, location), requiresGrad);
}
