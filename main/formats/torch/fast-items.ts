import { ItemPut, type TensorItem } from '../pickle/opcode-observer.ts';
import type { ItemSite } from '../pickle/unpickler.ts';
import { PyDict, PyGlobal, PyTuple, type PyValue } from '../values/python-values.ts';
import { TorchTensor, type TorchStorage } from '../values/torch-values.ts';
import { plainTensorV2, rebuildTensor, storageIdOf, type StorageId } from './torch-pickle.ts';
import { asciiText } from '../../io/buffer-text.ts';

// The opcodes of the grammar (CPython Lib/pickle.py).
const MARK = 0x28;
const EMPTY_TUPLE = 0x29;
const BININT = 0x4a;
const BININT1 = 0x4b;
const BININT2 = 0x4d;
const BINPERSID = 0x51;
const REDUCE = 0x52;
const BINUNICODE = 0x58;
const BINGET = 0x68;
const LONG_BINGET = 0x6a;
const BINPUT = 0x71;
const LONG_BINPUT = 0x72;
const TUPLE = 0x74;
const TUPLE1 = 0x85;
const TUPLE3 = 0x87;
const NEWTRUE = 0x88;
const NEWFALSE = 0x89;
const LONG1 = 0x8a;
const SHORT_BINUNICODE = 0x8c;

/** Strings longer than this, and sizes of more dimensions, are left to the VM. */
const MAX_TEXT = 4096;
const MAX_DIMS = 32;
const REBUILD = 'torch._utils._rebuild_tensor_v2';
const ORDERED_DICT = 'collections.OrderedDict';

/**
 * Reads the items of a dict as `torch.save` (protocol 2, the default) writes a state dict, one step
 * per item instead of about 30 opcodes through the VM and the security scan: a 100,000-tensor
 * checkpoint has 100 batches of 1000 such items. An item is
 *
 *     key PUT  BINGET(_rebuild_tensor_v2)  MARK
 *       MARK 'storage' BINGET(torch.<X>Storage) storage_key location numel TUPLE PUT  BINPERSID
 *       offset  size  stride  NEWFALSE|NEWTRUE  BINGET(OrderedDict) EMPTY_TUPLE REDUCE PUT
 *     TUPLE PUT  REDUCE PUT
 *
 * (torch/_tensor.py `_reduce_ex_internal`: `(storage, storage_offset, tuple(size), stride,
 * requires_grad, OrderedDict())`; torch/serialization.py `_save.persistent_id`:
 * `('storage', storage_type, storage_key, location, numel)`, where torch 2.x names the typed
 * class `getattr(torch, storage._pickle_storage_type())` too; pickle.py memoizes every str and
 * tuple it writes, so `'storage'`, the class, a shared storage's key and a repeated location come
 * back by BINGET), or `key PUT BINGET(a tensor read before)` for a tensor that appears twice.
 *
 * An item is taken only when the functions come from the memo: the first item of a pickle, which
 * names them with GLOBAL, and anything else outside this grammar (a 7th metadata argument, a
 * `Parameter`, a tensor subclass, protocol 4's MEMOIZE and frames) are left to the VM, opcode by
 * opcode, with every check it makes. A taken item leaves what the VM would have left: the same
 * values (the tensor `rebuildTensor` makes), memo entries, call counts and opcodes seen, and the
 * same security scan (`PickleScanner.skipTensorItem`).
 */
export class TensorItemReader {
  private bytes: Uint8Array = new Uint8Array(0);
  private text: Buffer = Buffer.alloc(0);
  private end = 0;
  /** the next byte to read, and the offset of the last opcode read */
  private p = 0;
  private lastAt = 0;
  private readonly seen = new Uint8Array(256);
  /** items read so far (for tests) */
  taken = 0;
  private readonly item: TensorItem = {
    last: 0,
    ops: [],
    opCount: 0,
    key: '',
    valueGet: -1,
    rebuildGet: -1,
    hooksGet: -1,
    storageTagGet: -1,
    storageKey: '',
    location: '',
    hooksAt: 0,
    rebuildAt: 0,
    puts: [],
    putWhat: [],
    putCount: 0,
  };

  constructor(
    private readonly file: string,
    private readonly loadStorage: (id: StorageId) => TorchStorage,
  ) {}

  /** `PickleHooks.items`: reads items from `at` while they follow one another; the offset after the last. */
  read(site: ItemSite, at: number): number {
    if (site.bytes !== this.bytes) {
      this.bytes = site.bytes;
      this.text = Buffer.from(site.bytes.buffer, site.bytes.byteOffset, site.bytes.byteLength);
    }
    this.end = site.end;
    let p = at;
    for (let next = this.readItem(site, p); next >= 0; next = this.readItem(site, p)) p = next;
    return p;
  }

  /** One item from `at`, taken: the offset after it; or -1, nothing changed. */
  private readItem(site: ItemSite, at: number): number {
    if (!site.room()) return -1;
    const item = this.begin(at);
    const key = this.string(this.op());
    if (key === null) return -1;
    item.key = key;
    this.put(ItemPut.Key);
    const fnAt = this.getIndex(this.op());
    const fn = this.memoValue(site, fnAt);
    if (fn instanceof TorchTensor) {
      item.valueGet = fnAt;
      return this.take(site, key, fn, null, null, null);
    }
    if (!(fn instanceof PyGlobal) || fn.fullName !== REBUILD || this.op() !== MARK || this.op() !== MARK) return -1;
    item.rebuildGet = fnAt;
    // the persistent id
    const tag = this.textOrGet(site, ItemPut.StorageTag);
    if (tag !== 'storage') return -1;
    item.storageTagGet = this.gotAt;
    const storageType = this.memoValue(site, this.getIndex(this.op()));
    const storageKey = this.textOrGet(site, ItemPut.StorageKey);
    item.storageKey = typeof storageKey === 'string' ? storageKey : ''; // for a PUT of it: only one written inline is
    const location = this.textOrGet(site, ItemPut.Location);
    item.location = typeof location === 'string' ? location : '';
    const numel = this.int(this.op());
    if (storageType === undefined || storageKey === undefined || location === undefined || Number.isNaN(numel) || this.op() !== TUPLE) return -1;
    this.put(ItemPut.Tuple);
    if (this.op() !== BINPERSID) return -1;
    // the rest of the arguments
    const offset = this.int(this.op());
    const shape = this.dims();
    const stride = this.dims();
    const grad = this.op();
    if (Number.isNaN(offset) || shape === null || stride === null || (grad !== NEWFALSE && grad !== NEWTRUE)) return -1;
    const hooksAt = this.getIndex(this.op());
    const hooksFn = this.memoValue(site, hooksAt);
    if (!(hooksFn instanceof PyGlobal) || hooksFn.fullName !== ORDERED_DICT || this.op() !== EMPTY_TUPLE || this.op() !== REDUCE) return -1;
    item.hooksGet = hooksAt;
    item.hooksAt = this.lastAt;
    this.put(ItemPut.Hooks);
    if (this.op() !== TUPLE) return -1;
    this.put(ItemPut.Tuple);
    if (this.op() !== REDUCE) return -1;
    item.rebuildAt = this.lastAt;
    this.put(ItemPut.Tensor);

    const requiresGrad = grad === NEWTRUE;
    const hooks = requiresGrad || this.puts(site, ItemPut.Hooks) ? new PyDict(true) : null;
    let tensor: TorchTensor;
    try {
      // what the VM's persistent_load and REDUCE make of the same arguments (errors: the VM raises them)
      const storage = this.loadStorage(storageIdOf(storageType, storageKey, location, numel, undefined, this.file));
      tensor = requiresGrad
        ? rebuildTensor(fn, [storage, offset, new PyTuple(shape), new PyTuple(stride), true, hooks], this.file)!
        : plainTensorV2(fn, storage, offset, shape, stride, this.file);
    } catch {
      return -1;
    }
    return this.take(site, key, tensor, hooks, hooksFn, fn);
  }

  /** Commits the item read: the scan first (it may decline), then the VM's memo, items and counts. */
  private take(site: ItemSite, key: string, value: TorchTensor, hooks: PyDict | null, hooksFn: PyGlobal | null, fn: PyGlobal | null): number {
    const { item } = this;
    item.last = this.lastAt;
    if (this.puts(site, ItemPut.Tuple)) return -1; // a tuple read back later: the VM makes it
    const scan = site.scan;
    if (scan?.running && !scan.skipTensorItem?.(item)) return -1;
    for (let i = 0; i < item.opCount; i++) site.opcodes[item.ops[i]!] = 1;
    for (let i = 0; i < item.putCount; i++) {
      const at = item.puts[i]!;
      if (!site.memo.keeps(at))
        site.memo.set(at, null); // only counted
      else site.memo.set(at, this.putValue(item.putWhat[i]!, key, value, hooks));
    }
    site.push(key);
    site.push(value);
    if (hooksFn) site.called(hooksFn);
    if (fn) site.called(fn);
    this.taken++;
    return this.p;
  }

  private putValue(what: ItemPut, key: string, tensor: TorchTensor, hooks: PyDict | null): PyValue {
    switch (what) {
      case ItemPut.Key:
        return key;
      case ItemPut.StorageTag:
        return 'storage';
      case ItemPut.StorageKey:
        return this.item.storageKey;
      case ItemPut.Location:
        return this.item.location;
      case ItemPut.Hooks:
        return hooks;
      default:
        return tensor;
    }
  }

  /** Whether the item PUTs a value of kind `what` at an index the memo keeps (one read back later). */
  private puts(site: ItemSite, what: ItemPut): boolean {
    const { puts, putWhat, putCount } = this.item;
    for (let i = 0; i < putCount; i++) if (putWhat[i] === what && site.memo.keeps(puts[i]!)) return true;
    return false;
  }

  private begin(at: number): TensorItem {
    const item = this.item;
    for (let i = 0; i < item.opCount; i++) this.seen[item.ops[i]!] = 0;
    item.opCount = item.putCount = 0;
    item.valueGet = item.rebuildGet = item.hooksGet = item.storageTagGet = -1;
    item.storageKey = item.location = '';
    this.p = at;
    return item;
  }

  /** The next opcode, or -1 past the end. */
  private op(): number {
    if (this.p >= this.end) return -1;
    const op = this.bytes[this.p]!;
    this.lastAt = this.p++;
    if (this.seen[op] === 0) {
      this.seen[op] = 1;
      this.item.ops[this.item.opCount++] = op;
    }
    return op;
  }

  /** `n` argument bytes: their offset, or -1 when the pickle ends first. */
  private arg(n: number): number {
    const at = this.p;
    if (at + n > this.end) return -1;
    this.p += n;
    return at;
  }

  /** The ASCII text of a BINUNICODE or SHORT_BINUNICODE `op`, or null. */
  private string(op: number): string | null {
    const lengthAt = op === SHORT_BINUNICODE ? this.arg(1) : op === BINUNICODE ? this.arg(4) : -1;
    if (lengthAt < 0) return null;
    const n = op === SHORT_BINUNICODE ? this.bytes[lengthAt]! : this.uint32(lengthAt);
    if (n > MAX_TEXT) return null;
    const at = this.arg(n);
    return at < 0 ? null : asciiText(this.text, at, at + n);
  }

  /** The memo index of a BINGET or LONG_BINGET `op`, or -1. */
  private getIndex(op: number): number {
    if (op === BINGET) {
      const at = this.arg(1);
      return at < 0 ? -1 : this.bytes[at]!;
    }
    if (op !== LONG_BINGET) return -1;
    const at = this.arg(4);
    return at < 0 ? -1 : this.uint32(at);
  }

  /** The value at memo index `at` as the VM would read it; undefined when not stored, or stored by this item (not yet in the memo). */
  private memoValue(site: ItemSite, at: number): PyValue | undefined {
    if (at < 0) return undefined;
    const { puts, putCount } = this.item;
    for (let i = 0; i < putCount; i++) if (puts[i] === at) return undefined;
    return site.memo.get(at);
  }

  /** The memo index `textOrGet` read from, or -1 for text written inline. */
  private gotAt = -1;

  /** A string written inline (then PUT as `what`), or a value read from the memo (`gotAt`); undefined for anything else. */
  private textOrGet(site: ItemSite, what: ItemPut): PyValue | undefined {
    const op = this.op();
    this.gotAt = this.getIndex(op);
    if (this.gotAt >= 0) return this.memoValue(site, this.gotAt);
    const s = this.string(op);
    if (s === null) return undefined;
    this.put(what);
    return s;
  }

  /** An optional BINPUT or LONG_BINPUT after a value of kind `what`. */
  private put(what: ItemPut): void {
    const next = this.p < this.end ? this.bytes[this.p]! : -1;
    if (next !== BINPUT && next !== LONG_BINPUT) return;
    const save = this.p;
    this.op();
    const at = this.arg(next === BINPUT ? 1 : 4);
    if (at < 0) {
      this.p = save; // cut short: the next read fails on it
      return;
    }
    const item = this.item;
    item.puts[item.putCount] = next === BINPUT ? this.bytes[at]! : this.uint32(at);
    item.putWhat[item.putCount++] = what;
  }

  /** The int of BININT1, BININT2, BININT or a LONG1 of at most 6 bytes `op`; NaN for anything else. */
  private int(op: number): number {
    const b = this.bytes;
    let at: number;
    switch (op) {
      case BININT1:
        at = this.arg(1);
        return at < 0 ? NaN : b[at]!;
      case BININT2:
        at = this.arg(2);
        return at < 0 ? NaN : b[at]! | (b[at + 1]! << 8);
      case BININT:
        at = this.arg(4);
        return at < 0 ? NaN : this.uint32(at) | 0;
      case LONG1: {
        const lengthAt = this.arg(1);
        const n = lengthAt < 0 ? 7 : b[lengthAt]!;
        at = n <= 6 ? this.arg(n) : -1; // two's complement, little-endian; 6 bytes are exact in a double
        if (at < 0) return NaN;
        let v = 0;
        for (let i = n - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
        return n > 0 && b[at + n - 1]! & 0x80 ? v - 2 ** (8 * n) : v;
      }
      default:
        return NaN;
    }
  }

  /**
   * A size or stride: EMPTY_TUPLE, one to three ints then TUPLE1–3, or MARK, ints, TUPLE (pickle.py
   * `save_tuple`), the non-empty ones PUT; null for anything else.
   */
  private dims(): number[] | null {
    let op = this.op();
    if (op === EMPTY_TUPLE) return [];
    const marked = op === MARK;
    if (marked) op = this.op();
    const dims: number[] = [];
    for (let v = this.int(op); !Number.isNaN(v); v = this.int(op)) {
      if (dims.length === MAX_DIMS) return null;
      dims.push(v);
      op = this.op();
    }
    if (marked ? op !== TUPLE : op !== TUPLE1 + dims.length - 1 || op > TUPLE3 || dims.length === 0) return null;
    this.put(ItemPut.Tuple);
    return dims;
  }

  private uint32(at: number): number {
    const b = this.bytes;
    return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  }
}
