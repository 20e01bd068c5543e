import type { RandomAccessReader } from '../../io/random-access.ts';
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import { PyDict, PyGlobal, PyTuple, type PyValue } from './python-values.ts';

/** Where a storage's bytes lie: a byte range of some file, found only when asked for. */
export interface ByteRange {
  reader: RandomAccessReader;
  offset: number;
  length: number;
}

/** Finds a storage's bytes when first asked; one small object per storage where a closure would hold its maker's whole scope. */
export interface ByteLocator {
  locate(): ByteRange;
}

let nextStorageSerial = 0;

/** The next storage serial number (`TorchStorage.serial`), for storages made without the constructor (`header-values.ts`). */
export function takeStorageSerial(): number {
  return nextStorageSerial++;
}

/**
 * A storage as a checkpoint names it: torch's persistent id
 * `('storage', storage_type, key, location, numel)` (torch/serialization.py, `_save`/`persistent_id`).
 * `location` is the device tag exactly as saved (`cpu`, `cuda:3`, `mps`).
 */
export class TorchStorage {
  /** this storage's number among all made by this process: counting distinct storages sorts numbers, not objects */
  readonly serial = takeStorageSerial();
  /** Legacy formats: the root storage this one is a byte window of, and where it starts. */
  viewOf: TorchStorage | null = null;
  viewOffset = 0;
  /** CRC-32 the archive recorded for exactly these bytes (a whole stored zip record), if known */
  recordCrc: number | null = null;
  constructor(
    /** the key the archive stores it under (`data/<key>` in zip files) */
    readonly key: string,
    /** the storage class named in the pickle, e.g. `FloatStorage`, `UntypedStorage` */
    readonly storageType: string,
    /** element type of the storage (uint8 for UntypedStorage) */
    readonly dtype: DTypeInfo,
    readonly location: string,
    /** element count as saved */
    readonly numel: number,
    /**
     * where the bytes are: a function that finds them when first asked, or the range itself when
     * the header already says (safetensors, npy: a closure per storage cost 500,000 of them)
     */
    private readonly where: (() => ByteRange) | ByteRange | ByteLocator,
    /** the module the storage class was named under (`torch` or `torch.cuda`) */
    readonly storageModule = 'torch',
  ) {}
  /** Where the bytes lie (found lazily: a zip record's local header is read only now). */
  locate(): ByteRange {
    const w = this.where;
    if (typeof w === 'function') return w();
    return 'locate' in w ? w.locate() : w;
  }
  get nbytes(): number {
    return this.numel * this.dtype.size;
  }
  describe(): string {
    return `${this.storageType}(key=${this.key}, ${this.location}, ${this.numel})`;
  }
}

export type TensorKind = 'dense' | 'parameter' | 'quantized' | 'sparse' | 'nested' | 'meta' | 'numpy' | 'subclass' | 'other';

/**
 * A tensor, read lazily: metadata from the pickle, bytes from its storage on demand.
 * `rebuild` and `args` are the exact recipe from the pickle (e.g. `torch._utils._rebuild_tensor_v2`
 * with its arguments, the storage among them), so a writer can emit it again.
 */
export class TorchTensor {
  requiresGrad = false;
  /** Set when the tensor is a `torch.nn.Parameter` (via `_rebuild_parameter` or `_rebuild_from_type_v2`). */
  isParameter = false;
  /** the fields few tensors set, in one object made by the first of them (a field each cost 500,000 × 8 bytes) */
  private rare: RareTensorFields | null = null;
  private recipeArgs: PyValue[] | null;
  constructor(
    readonly rebuild: PyGlobal,
    /**
     * The rebuild's arguments; null for a dense tensor made from a header (safetensors, npy), whose
     * `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` arguments are built
     * when first read: inspecting 500,000 tensors never needs them.
     */
    args: PyValue[] | null,
    readonly kind: TensorKind,
    readonly dtype: DTypeInfo,
    shape: number[],
    stride: number[],
    readonly storageOffset: number,
    readonly storage: TorchStorage | null,
  ) {
    this.recipeArgs = args;
    this.shape = internDims(shape);
    this.stride = internDims(stride);
  }
  /** Python attributes set on the tensor (`_rebuild_from_type_v2` state), rarely present. */
  get pyState(): PyValue | undefined {
    return this.rare?.pyState;
  }
  set pyState(v: PyValue | undefined) {
    if (v !== undefined || this.rare) (this.rare ??= new RareTensorFields()).pyState = v;
  }
  /** The Python class when this is a tensor subclass (e.g. DTensor), else null. */
  get subclass(): string | null {
    return this.rare?.subclass ?? null;
  }
  set subclass(v: string | null) {
    if (v !== null || this.rare) (this.rare ??= new RareTensorFields()).subclass = v;
  }
  /** The device named in the recipe for storage-less tensors (`_rebuild_wrapper_subclass`, numpy rebuilds). */
  get deviceArg(): string | null {
    return this.rare?.deviceArg ?? null;
  }
  set deviceArg(v: string | null) {
    if (v !== null || this.rare) (this.rare ??= new RareTensorFields()).deviceArg = v;
  }
  /** Sparse and nested tensors: the dense tensors they are made of (one shared empty list for the rest). */
  get components(): readonly TorchTensor[] {
    return this.rare?.components ?? NO_COMPONENTS;
  }
  set components(v: readonly TorchTensor[]) {
    if (v.length || this.rare) (this.rare ??= new RareTensorFields()).components = v;
  }
  /** frozen and shared with every tensor of the same shape (`internDims`) */
  readonly shape: number[];
  readonly stride: number[];
  /**
   * The recipe's arguments. Built afresh on each read when the tensor has none of its own (not
   * kept: a writer reads them twice, for the code-free walk and the pickler, and 500,000 kept
   * lists held four objects per tensor until the conversion ended). Compare storages, not lists.
   */
  /** True when `args` makes its tuples and hooks dict afresh on each read (the tensor keeps no recipe of its own). */
  get argsAreMadePerRead(): boolean {
    return this.recipeArgs === null;
  }
  get args(): PyValue[] {
    return this.recipeArgs ?? [this.storage, this.storageOffset, new PyTuple(this.shape), new PyTuple(this.stride), false, new PyDict(true)];
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get nbytes(): number {
    return this.numel * this.dtype.size;
  }
  get device(): string {
    return this.storage?.location ?? this.deviceArg ?? (this.kind === 'meta' ? 'meta' : 'cpu');
  }
  /** True when the elements are laid out densely in row-major order. */
  get isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }
  /** Bytes of the storage this tensor can touch: [first, last] element span, in bytes. */
  get storageSpan(): { offset: number; length: number } {
    if (this.numel === 0) return { offset: this.storageOffset * this.dtype.size, length: 0 };
    let last = this.storageOffset;
    for (let i = 0; i < this.shape.length; i++) last += (this.shape[i]! - 1) * this.stride[i]!;
    return { offset: this.storageOffset * this.dtype.size, length: (last - this.storageOffset + 1) * this.dtype.size };
  }
  describe(): string {
    return `tensor(${this.dtype.name}, [${this.shape.join(', ')}], ${this.device})`;
  }
}

const NO_COMPONENTS: readonly TorchTensor[] = Object.freeze([]);

class RareTensorFields {
  pyState: PyValue | undefined = undefined;
  subclass: string | null = null;
  deviceArg: string | null = null;
  components: readonly TorchTensor[] = NO_COMPONENTS;
}

/** A node of `internDims`' trie: the frozen list ending here, and the longer lists by their next number. */
interface DimsNode {
  dims: number[] | null;
  next: Map<number, DimsNode> | null;
}
const DIMS_ROOT: DimsNode = { dims: null, next: null };
/** Nodes the trie may grow to; past it lists are kept as given (a file of a million distinct shapes). */
const MAX_DIMS_NODES = 65_536;
let dimsNodes = 0;

/**
 * One frozen array per distinct list of dimensions. A mixture-of-experts checkpoint holds
 * 100,000s of tensors with a handful of shapes, and each tensor kept two arrays (shape and stride,
 * ~110 bytes); now they share. A trie keyed by number, so no key text is made per tensor. Frozen:
 * a holder that changed its list would change every other tensor's.
 */
export function internDims(dims: number[]): number[] {
  let node = DIMS_ROOT;
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i]!;
    let child = node.next?.get(d);
    if (!child) {
      if (dimsNodes >= MAX_DIMS_NODES) return dims;
      dimsNodes++;
      child = { dims: null, next: null };
      (node.next ??= new Map()).set(d, child);
    }
    node = child;
  }
  return (node.dims ??= Object.freeze(dims.slice()) as number[]);
}

export const REBUILD_TENSOR_V2 = new PyGlobal('torch._utils', '_rebuild_tensor_v2');

/**
 * Row-major strides as torch gives a new tensor: c10's `TensorImpl::empty_tensor_restride`
 * multiplies by `max(size, 1)`, so a zero-sized dimension counts as 1 (`torch.empty(5, 0)`
 * has stride (1, 1)).
 */
export function contiguousStrides(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = s;
    s *= Math.max(shape[i]!, 1);
  }
  return stride;
}
