import { dtypeByName, dtypeByStorage } from '../../shared/dtypes.ts';
import { memoReads } from '../formats/pickle/memo-reads.ts';
import { PickleInput } from '../formats/pickle/pickle-input.ts';
import { utf8SurrogatePass } from '../formats/pickle/pickle-text.ts';

/**
 * The read-back's own decoding of a written `data.pkl`, independent of the pickler that wrote it
 * and lighter than the reader's: it knows only the opcodes and calls the writer uses for plain
 * containers and dense tensors (CPython's Lib/pickle.py `_Unpickler` is the reference for each
 * opcode; torch/_utils.py `_rebuild_tensor_v2`/`_v3` and torch/serialization.py `_save`'s
 * persistent id `('storage', storage_type, key, location, numel)` for the tensors), and builds
 * small records instead of full values: a 100,000-tensor file is checked without a second copy
 * of the tree. Anything else (objects, parameters, subclasses, big ints, bytes) makes it answer
 * `unsupported`, and the caller reads the file with the full reader instead.
 */
export class WrittenTuple {
  constructor(readonly items: WrittenValue[]) {}
}
export class WrittenList {
  items: WrittenValue[] = [];
}
export class WrittenDict {
  /** the entries, key i with value i (two lists: no pair per entry of a 500,000-key dict) */
  readonly keys: WrittenValue[] = [];
  readonly values: WrittenValue[] = [];
  /** instance attributes an OrderedDict's BUILD set (torch's `_metadata`) */
  attrs: WrittenDict | null = null;
  constructor(readonly ordered: boolean) {}
}
export class WrittenGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}
export class WrittenFloat {
  constructor(readonly value: number) {}
}
export class WrittenStorageId {
  constructor(
    readonly storageClass: string,
    readonly key: string,
    readonly location: string,
    readonly numel: number,
    /** the element size of the storage class's dtype: the reader's storage is numel × this bytes */
    readonly itemSize: number,
  ) {}
}
export class WrittenTensor {
  constructor(
    readonly storage: WrittenStorageId,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
    readonly dtype: string,
    /** the dtype's element size in bytes */
    readonly itemSize: number,
  ) {}
}
export type WrittenValue =
  | null
  | boolean
  | number
  | string
  | WrittenTuple
  | WrittenList
  | WrittenDict
  | WrittenGlobal
  | WrittenFloat
  | WrittenStorageId
  | WrittenTensor;

export type WrittenPickle =
  /** `streamed`: the top-level container's items were handed out by `decodeWritten`, not kept in it */
  | { value: WrittenValue; globals: Set<string>; streamed: boolean }
  | { unsupported: string }
  /** bytes no pickle VM accepts: a mismatch, with where */
  | { malformed: string };

class Unsupported extends Error {}
class Malformed extends Error {}

const MARK = Symbol('mark');
type Slot = WrittenValue | typeof MARK;

export function decodeWrittenPickle(b: Uint8Array): WrittenPickle {
  const decoding = decodeWritten(b, null);
  for (;;) {
    const step = decoding.next();
    if (step.done) return step.value;
  }
}

/** An item set into the top-level container: a dict's key and value, or a list's item and its index. */
export interface RootItem {
  /** the top-level container (without its streamed items) */
  root: WrittenDict | WrittenList;
  key: WrittenValue;
  inList: boolean;
  value: WrittenValue;
}

/**
 * The state of one decoding and the reads every opcode uses. A class, not closures made per call:
 * a batch decodes hundreds of files per thread, and closures re-created on every call were
 * compiled by V8 again and again; methods are compiled once per thread.
 */
class WrittenReader {
  pos = 0;
  readonly stack: Slot[] = [];
  readonly marks: number[] = [];
  readonly memo: WrittenValue[] = [];
  readonly globals = new Set<string>();
  /** the top-level container once its items are streamed */
  streamRoot: WrittenDict | WrittenList | null = null;
  rootIndex = 0;
  private readonly buf: Buffer;
  // Equal tuples of ints are one tuple (a tuple is immutable and holds no tensor, so which copy is
  // met is never seen): most of 500,000 tensors have one of a few shapes and strides, and the memo
  // holds each tuple until the end.
  private readonly intTuples = new Map<string | number, WrittenTuple>();

  constructor(
    readonly b: Uint8Array,
    private readonly walked: WeakSet<object> | null,
    // the memo entries some GET reads: only those are kept (a written file memoizes every tensor,
    // its arguments and storage id, and reads back none of them)
    readonly fetched: ReadonlySet<number> | null,
  ) {
    // ASCII keys by one native latin1 read each (flat strings, no view object); the rest through the strict UTF-8 decoder
    this.buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
  }

  need(n: number): void {
    if (this.pos + n > this.b.length) throw new Malformed(`ends inside an opcode at byte ${this.pos}`);
  }
  u8(): number {
    this.need(1);
    return this.b[this.pos++]!;
  }
  u32(): number {
    this.need(4);
    const b = this.b;
    const pos = this.pos;
    const v = (b[pos]! | (b[pos + 1]! << 8) | (b[pos + 2]! << 16) | (b[pos + 3]! << 24)) >>> 0;
    this.pos = pos + 4;
    return v;
  }
  pop(): WrittenValue {
    const v = this.stack.pop();
    if (v === undefined || v === MARK) throw new Malformed(`pops past a mark or an empty stack at byte ${this.pos}`);
    if (v === this.streamRoot && v !== null) throw new Unsupported('the top-level container moved into another after its items were checked');
    return v;
  }
  /** `top()` as the target of SETITEM(S) or APPEND(S): a container walked already is not changed */
  changing(): WrittenValue {
    const t = this.top();
    if (this.walked !== null && t !== null && typeof t === 'object' && this.walked.has(t)) throw new Unsupported('a container changed after it was checked');
    return t;
  }
  /** Whether items set into `t` are streamed: the top-level container, alone on the stack. */
  streams(t: WrittenDict | WrittenList): boolean {
    if (this.walked === null || this.stack.length !== 1 || !(t instanceof WrittenDict || t instanceof WrittenList)) return false;
    this.streamRoot ??= t;
    return t === this.streamRoot;
  }
  top(): WrittenValue {
    const v = this.stack[this.stack.length - 1];
    if (v === undefined || v === MARK) throw new Malformed(`has no value to work on at byte ${this.pos}`);
    return v;
  }
  popMark(): WrittenValue[] {
    const at = this.marks.pop();
    if (at === undefined) throw new Malformed(`has no mark to pop at byte ${this.pos}`);
    const items = this.stack.splice(at + 1) as WrittenValue[];
    this.stack.length = at; // the mark itself
    return items;
  }
  text(from: number, to: number): string {
    const buf = this.buf;
    for (let i = from; i < to; i++) if (buf[i]! >= 0x80) return utf8SurrogatePass(buf.subarray(from, to), true);
    return buf.toString('latin1', from, to);
  }
  line(): string {
    const end = this.b.indexOf(0x0a, this.pos);
    if (end < 0) throw new Malformed(`has an unterminated GLOBAL at byte ${this.pos}`);
    const s = utf8SurrogatePass(this.b.subarray(this.pos, end), true);
    this.pos = end + 1;
    return s;
  }
  reduce(fn: WrittenValue, args: WrittenValue): WrittenValue {
    if (!(fn instanceof WrittenGlobal) || !(args instanceof WrittenTuple)) throw new Unsupported('a call of something other than a global');
    const a = args.items;
    if (fn.module === 'collections' && fn.name === 'OrderedDict' && a.length === 0) return new WrittenDict(true);
    if (fn.module === 'torch._utils' && (fn.name === '_rebuild_tensor_v2' || fn.name === '_rebuild_tensor_v3')) return writtenTensor(fn.name, a);
    throw new Unsupported(`a call of ${fn.module}.${fn.name}`);
  }
  tupleOf(items: WrittenValue[]): WrittenTuple {
    if (items.length > 8 || !items.every((x) => typeof x === 'number')) return new WrittenTuple(items);
    const key = items.length === 1 ? (items[0] as number) : items.join(',');
    let t = this.intTuples.get(key);
    if (!t) this.intTuples.set(key, (t = new WrittenTuple(items)));
    return t;
  }
  storageId(pid: WrittenValue): WrittenStorageId {
    const [tag, cls, key, location, numel] = pid instanceof WrittenTuple ? pid.items : [];
    if (!(pid instanceof WrittenTuple) || pid.items.length !== 5 || tag !== 'storage' || !(cls instanceof WrittenGlobal))
      throw new Unsupported('a persistent id that is not a torch storage');
    if (typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || numel < 0)
      throw new Malformed(`has a malformed storage id at byte ${this.pos}`);
    // decodeStorageId reads the class by its name (torch.FloatStorage, torch.storage.UntypedStorage)
    const storageClass = cls.module === 'torch.storage' || cls.module === 'torch' ? cls.name : `${cls.module}.${cls.name}`;
    const item = dtypeByStorage(storageClass);
    if (!item) throw new Unsupported(`storage class ${cls.module}.${cls.name}`);
    return new WrittenStorageId(storageClass, key, location, numel, item.size);
  }
}

const ints = (v: WrittenValue | undefined): number[] | null =>
  v instanceof WrittenTuple && v.items.every((x) => typeof x === 'number') ? (v.items as number[]) : null;

function writtenTensor(name: string, a: WrittenValue[]): WrittenTensor {
  const [storage, offset, size, stride, requiresGrad, hooks, dtypeArg] = a;
  const shape = ints(size);
  const strides = ints(stride);
  const v3 = name === '_rebuild_tensor_v3';
  if (
    a.length !== (v3 ? 7 : 6) ||
    !(storage instanceof WrittenStorageId) ||
    typeof offset !== 'number' ||
    !shape ||
    !strides ||
    typeof requiresGrad !== 'boolean' ||
    !(hooks instanceof WrittenDict) ||
    hooks.keys.length
  )
    throw new Unsupported(`a ${name} call with other arguments than a plain tensor's`);
  const dtype = v3
    ? dtypeArg instanceof WrittenGlobal && dtypeArg.module === 'torch'
      ? dtypeByName(dtypeArg.name)
      : undefined
    : dtypeByStorage(storage.storageClass);
  if (!dtype) throw new Unsupported(`a ${name} call with an unknown dtype`);
  return new WrittenTensor(storage, offset, shape, strides, requiresGrad, dtype.name, dtype.size);
}

/**
 * `decodeWrittenPickle`, and with `walked` given, a stream: each item set into the top-level
 * container is handed out as it is set (then dropped), not kept in it, so the tensors of a flat
 * state dict are checked one at a time and never all held (`WrittenPickle.value` is then the
 * container without them). Before asking for the next item the caller walks the item it has and
 * adds each container it visits to `walked`: a walked container that is changed later, or the
 * top-level container moved into another, makes the decoding `unsupported` (a full reading then
 * checks the file), so what was walked is what the finished tree holds.
 */
export function* decodeWritten(b: Uint8Array, walked: WeakSet<object> | null): Generator<RootItem, WrittenPickle, undefined> {
  const r = new WrittenReader(b, walked, memoReads(PickleInput.fromBytes(b, 'data.pkl')));
  try {
    for (;;) {
      const op = r.u8();
      switch (op) {
        case 0x80: // PROTO
          if (r.u8() > 2) throw new Unsupported('a protocol above 2');
          break;
        case 0x2e: // STOP
          if (r.stack.length !== 1 || r.marks.length || r.stack[0] === MARK) throw new Malformed(`stops with ${r.stack.length} values on the stack`);
          return { value: r.stack[0]!, globals: r.globals, streamed: r.streamRoot !== null };
        case 0x4e: // NONE
          r.stack.push(null);
          break;
        case 0x88: // NEWTRUE
          r.stack.push(true);
          break;
        case 0x89: // NEWFALSE
          r.stack.push(false);
          break;
        case 0x4b: // BININT1
          r.stack.push(r.u8());
          break;
        case 0x4d: {
          // BININT2
          const lo = r.u8();
          r.stack.push(lo | (r.u8() << 8));
          break;
        }
        case 0x4a: // BININT (signed)
          r.stack.push(r.u32() | 0);
          break;
        case 0x47: {
          // BINFLOAT, big-endian
          r.need(8);
          r.stack.push(new WrittenFloat(new DataView(b.buffer, b.byteOffset + r.pos, 8).getFloat64(0, false)));
          r.pos += 8;
          break;
        }
        case 0x58: {
          // BINUNICODE
          const n = r.u32();
          r.need(n);
          r.stack.push(r.text(r.pos, r.pos + n));
          r.pos += n;
          break;
        }
        case 0x28: // MARK
          r.marks.push(r.stack.length);
          r.stack.push(MARK);
          break;
        case 0x29: // EMPTY_TUPLE
          r.stack.push(new WrittenTuple([]));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {
          // TUPLE1..3
          const items: WrittenValue[] = new Array(op - 0x84);
          for (let i = items.length - 1; i >= 0; i--) items[i] = r.pop();
          r.stack.push(r.tupleOf(items));
          break;
        }
        case 0x74: // TUPLE
          r.stack.push(r.tupleOf(r.popMark()));
          break;
        case 0x5d: // EMPTY_LIST
          r.stack.push(new WrittenList());
          break;
        case 0x7d: // EMPTY_DICT
          r.stack.push(new WrittenDict(false));
          break;
        case 0x61:
        case 0x65: {
          // APPEND, APPENDS
          const items = op === 0x61 ? [r.pop()] : r.popMark();
          const l = r.changing();
          if (!(l instanceof WrittenList)) throw new Malformed(`appends to a non-list at byte ${r.pos}`);
          if (r.streams(l)) for (const value of items) yield { root: l, key: r.rootIndex++, inList: true, value };
          else for (const v of items) l.items.push(v);
          break;
        }
        case 0x73:
        case 0x75: {
          // SETITEM, SETITEMS
          let items: WrittenValue[];
          if (op === 0x73) {
            const v = r.pop();
            items = [r.pop(), v];
          } else items = r.popMark();
          const d = r.changing();
          if (!(d instanceof WrittenDict) || items.length % 2) throw new Malformed(`sets items on a non-dict at byte ${r.pos}`);
          if (r.streams(d)) for (let i = 0; i < items.length; i += 2) yield { root: d, key: items[i]!, inList: false, value: items[i + 1]! };
          else
            for (let i = 0; i < items.length; i += 2) {
              d.keys.push(items[i]!);
              d.values.push(items[i + 1]!);
            }
          break;
        }
        case 0x71: {
          // BINPUT
          const i = r.u8();
          if (r.fetched === null || r.fetched.has(i)) r.memo[i] = r.top();
          else r.top();
          break;
        }
        case 0x72: {
          // LONG_BINPUT
          const i = r.u32();
          if (r.fetched === null || r.fetched.has(i)) r.memo[i] = r.top();
          else r.top();
          break;
        }
        case 0x68:
        case 0x6a: {
          // BINGET, LONG_BINGET
          const i = op === 0x68 ? r.u8() : r.u32();
          if (r.memo[i] === undefined) throw new Malformed(`gets memo entry ${i}, which was never put, at byte ${r.pos}`);
          r.stack.push(r.memo[i]!);
          break;
        }
        case 0x63: {
          // GLOBAL
          const module = r.line();
          const name = r.line();
          r.globals.add(`${module}.${name}`);
          r.stack.push(new WrittenGlobal(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = r.pop();
          r.stack.push(r.reduce(r.pop(), args));
          break;
        }
        case 0x51: // BINPERSID
          r.stack.push(r.storageId(r.pop()));
          break;
        case 0x62: {
          // BUILD: an OrderedDict's instance attributes
          const state = r.pop();
          const target = r.top();
          if (!(target instanceof WrittenDict) || !target.ordered || !(state instanceof WrittenDict) || target.attrs)
            throw new Unsupported('a BUILD other than an OrderedDict with attributes');
          target.attrs = state;
          break;
        }
        default:
          throw new Unsupported(`opcode 0x${op.toString(16)}`);
      }
    }
  } catch (e) {
    if (e instanceof Unsupported) return { unsupported: e.message };
    if (e instanceof Malformed) return { malformed: e.message };
    if (e instanceof TypeError) return { malformed: `has text that is not UTF-8 near byte ${r.pos}` };
    throw e;
  }
}
