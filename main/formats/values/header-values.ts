/**
 * Tensors and storages as a file header describes them (safetensors, npy, npz, ONNX): dense,
 * CPU, storage offset 0, no gradient, no Python state. Each object keeps only what differs from
 * one tensor to the next; the fields every such tensor has alike are constants on its prototype,
 * whose own prototype is `TorchTensor`'s (or `TorchStorage`'s). So to `instanceof`, to every
 * method and to every reader of a field they are TorchTensors and TorchStorages, at about half
 * the size: a 500,000-tensor safetensors header made 500,000 of each (112 + 128 bytes).
 *
 * They are never changed in place: the constant fields are read-only, so a write throws.
 */
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import { internDims, REBUILD_TENSOR_V2, takeStorageSerial, TorchStorage, TorchTensor, type ByteRange } from './torch-values.ts';

/**
 * Makes `cls`'s instances `base`'s to `instanceof`, its methods and `constructor` (error messages
 * name the class), with `constants` as fields: read-only, or with `writable` ones that an
 * assignment to an instance shadows with a field of its own.
 */
export function inheritWithConstants(cls: { prototype: object }, base: { prototype: object }, constants: Record<string, unknown>, writable = false): void {
  Object.setPrototypeOf(cls.prototype, base.prototype);
  Object.defineProperty(cls.prototype, 'constructor', { value: (base.prototype as { constructor: unknown }).constructor, writable: true });
  for (const [name, value] of Object.entries(constants)) Object.defineProperty(cls.prototype, name, { value, writable });
}

/** Own fields of a header tensor; the rest are `HEADER_TENSOR_CONSTANTS`. */
class HeaderTensorFields {
  readonly shape: number[];
  readonly stride: number[];
  constructor(
    readonly dtype: DTypeInfo,
    shape: number[],
    stride: number[],
    readonly storage: TorchStorage,
  ) {
    this.shape = internDims(shape);
    this.stride = internDims(stride);
  }
}

/**
 * Every other field a TorchTensor instance has, as `_rebuild_tensor_v2(storage, 0, size, stride,
 * False, OrderedDict())` (torch/_utils.py) makes it; `recipeArgs` null makes `args` build exactly that.
 */
const HEADER_TENSOR_CONSTANTS = {
  rebuild: REBUILD_TENSOR_V2,
  kind: 'dense',
  storageOffset: 0,
  requiresGrad: false,
  isParameter: false,
  rare: null,
  recipeArgs: null,
} as const;

inheritWithConstants(HeaderTensorFields, TorchTensor, HEADER_TENSOR_CONSTANTS);

/** A dense CPU tensor at offset 0 of its own storage, as a header describes it. */
export function headerTensor(dtype: DTypeInfo, shape: number[], stride: number[], storage: TorchStorage): TorchTensor {
  return new HeaderTensorFields(dtype, shape, stride, storage) as unknown as TorchTensor;
}

/** Own fields of a storage whose bytes are a byte range of one file; the rest are `FILE_RANGE_STORAGE_CONSTANTS`. */
class FileRangeStorageFields {
  readonly serial = takeStorageSerial();
  constructor(
    readonly key: string,
    readonly storageType: string,
    readonly dtype: DTypeInfo,
    readonly numel: number,
    private readonly reader: RandomAccessReader,
    private readonly offset: number,
  ) {}
  locate(): ByteRange {
    return { reader: this.reader, offset: this.offset, length: (this as unknown as TorchStorage).nbytes };
  }
}

/** `where` of a storage that locates its own bytes (never called). */
export const LOCATED_BY_ITSELF = {
  locate: (): never => {
    throw new Error('a file-range storage locates its own bytes');
  },
};

const FILE_RANGE_STORAGE_CONSTANTS = {
  location: 'cpu',
  storageModule: 'torch',
  viewOf: null,
  viewOffset: 0,
  recordCrc: null,
  where: LOCATED_BY_ITSELF,
} as const;

inheritWithConstants(FileRangeStorageFields, TorchStorage, FILE_RANGE_STORAGE_CONSTANTS);

/**
 * A CPU storage of `numel` elements of `dtype` whose bytes lie at `offset` of `reader`, as a header
 * says (safetensors): the range is kept in its own fields, not in a second object per storage.
 */
export function fileRangeStorage(key: string, storageType: string, dtype: DTypeInfo, numel: number, reader: RandomAccessReader, offset: number): TorchStorage {
  return new FileRangeStorageFields(key, storageType, dtype, numel, reader, offset) as unknown as TorchStorage;
}
