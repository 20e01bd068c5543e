import { dtypeByName, dtypeByStorage } from '../../shared/dtypes.ts';
import { memoReads } from '../formats/pickle/memo-reads.ts';
import { PickleInput } from '../formats/pickle/pickle-input.ts';

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
const decoder = new TextDecoder('utf-8', { fatal: true });

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
 * `decodeWrittenPickle`, and with `walked` given, a stream: each item set into the top-level
 * container is handed out as it is set (then dropped), not kept in it, so the tensors of a flat
 * state dict are checked one at a time and never all held (`WrittenPickle.value` is then the
 * container without them). Before asking for the next item the caller walks the item it has and
 * adds each container it visits to `walked`: a walked container that is changed later, or the
 * top-level container moved into another, makes the decoding `unsupported` (a full reading then
 * checks the file), so what was walked is what the finished tree holds.
 */
export function* decodeWritten(b: Uint8Array, walked: WeakSet<object> | null): Generator<RootItem, WrittenPickle, undefined> {
  // the memo entries some GET reads: only those are kept (a written file memoizes every tensor,
  // its arguments and storage id, and reads back none of them)
  const fetched = memoReads(PickleInput.fromBytes(b, 'data.pkl'));
  /** the top-level container once its items are streamed */
  let streamRoot: WrittenDict | WrittenList | null = null;
  let rootIndex = 0;
  let pos = 0;
  const stack: Slot[] = [];
  const marks: number[] = [];
  const memo: WrittenValue[] = [];
  const globals = new Set<string>();
  const need = (n: number): void => {
    if (pos + n > b.length) throw new Malformed(`ends inside an opcode at byte ${pos}`);
  };
  const u8 = (): number => {
    need(1);
    return b[pos++]!;
  };
  const u32 = (): number => {
    need(4);
    const v = (b[pos]! | (b[pos + 1]! << 8) | (b[pos + 2]! << 16) | (b[pos + 3]! << 24)) >>> 0;
    pos += 4;
    return v;
  };
  const pop = (): WrittenValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw new Malformed(`pops past a mark or an empty stack at byte ${pos}`);
    if (v === streamRoot && v !== null) throw new Unsupported('the top-level container moved into another after its items were checked');
    return v;
  };
  /** `top()` as the target of SETITEM(S) or APPEND(S): a container walked already is not changed */
  const changing = (): WrittenValue => {
    const t = top();
    if (walked !== null && t !== null && typeof t === 'object' && walked.has(t)) throw new Unsupported('a container changed after it was checked');
    return t;
  };
  /** Whether items set into `t` are streamed: the top-level container, alone on the stack. */
  const streams = (t: WrittenDict | WrittenList): boolean => {
    if (walked === null || stack.length !== 1 || !(t instanceof WrittenDict || t instanceof WrittenList)) return false;
    streamRoot ??= t;
    return t === streamRoot;
  };
  const top = (): WrittenValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new Malformed(`has no value to work on at byte ${pos}`);
    return v;
  };
  const popMark = (): WrittenValue[] => {
    const at = marks.pop();
    if (at === undefined) throw new Malformed(`has no mark to pop at byte ${pos}`);
    const items = stack.splice(at + 1) as WrittenValue[];
    stack.length = at; // the mark itself
    return items;
  };
  // ASCII keys by one native latin1 read each (flat strings, no view object); the rest through the strict UTF-8 decoder
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
  const text = (from: number, to: number): string => {
    for (let i = from; i < to; i++) if (buf[i]! >= 0x80) return decoder.decode(buf.subarray(from, to));
    return buf.toString('latin1', from, to);
  };
  const line = (): string => {
    const end = b.indexOf(0x0a, pos);
    if (end < 0) throw new Malformed(`has an unterminated GLOBAL at byte ${pos}`);
    const s = decoder.decode(b.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const reduce = (fn: WrittenValue, args: WrittenValue): WrittenValue => {
    if (!(fn instanceof WrittenGlobal) || !(args instanceof WrittenTuple)) throw new Unsupported('a call of something other than a global');
    const a = args.items;
    if (fn.module === 'collections' && fn.name === 'OrderedDict' && a.length === 0) return new WrittenDict(true);
    if (fn.module === 'torch._utils' && (fn.name === '_rebuild_tensor_v2' || fn.name === '_rebuild_tensor_v3')) return tensor(fn.name, a);
    throw new Unsupported(`a call of ${fn.module}.${fn.name}`);
  };
  // Equal tuples of ints are one tuple (a tuple is immutable and holds no tensor, so which copy is
  // met is never seen): most of 500,000 tensors have one of a few shapes and strides, and the memo
  // holds each tuple until the end.
  const intTuples = new Map<string | number, WrittenTuple>();
  const tupleOf = (items: WrittenValue[]): WrittenTuple => {
    if (items.length > 8 || !items.every((x) => typeof x === 'number')) return new WrittenTuple(items);
    const key = items.length === 1 ? (items[0] as number) : items.join(',');
    let t = intTuples.get(key);
    if (!t) intTuples.set(key, (t = new WrittenTuple(items)));
    return t;
  };
  const ints = (v: WrittenValue | undefined): number[] | null =>
    v instanceof WrittenTuple && v.items.every((x) => typeof x === 'number') ? (v.items as number[]) : null;
  const tensor = (name: string, a: WrittenValue[]): WrittenTensor => {
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
  };
  const storageId = (pid: WrittenValue): WrittenStorageId => {
    const [tag, cls, key, location, numel] = pid instanceof WrittenTuple ? pid.items : [];
    if (!(pid instanceof WrittenTuple) || pid.items.length !== 5 || tag !== 'storage' || !(cls instanceof WrittenGlobal))
      throw new Unsupported('a persistent id that is not a torch storage');
    if (typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || numel < 0)
      throw new Malformed(`has a malformed storage id at byte ${pos}`);
    // decodeStorageId reads the class by its name (torch.FloatStorage, torch.storage.UntypedStorage)
    const storageClass = cls.module === 'torch.storage' || cls.module === 'torch' ? cls.name : `${cls.module}.${cls.name}`;
    const item = dtypeByStorage(storageClass);
    if (!item) throw new Unsupported(`storage class ${cls.module}.${cls.name}`);
    return new WrittenStorageId(storageClass, key, location, numel, item.size);
  };

  try {
    for (;;) {
      const op = u8();
      switch (op) {
        case 0x80: // PROTO
          if (u8() > 2) throw new Unsupported('a protocol above 2');
          break;
        case 0x2e: // STOP
          if (stack.length !== 1 || marks.length || stack[0] === MARK) throw new Malformed(`stops with ${stack.length} values on the stack`);
          return { value: stack[0]!, globals, streamed: streamRoot !== null };
        case 0x4e: // NONE
          stack.push(null);
          break;
        case 0x88: // NEWTRUE
          stack.push(true);
          break;
        case 0x89: // NEWFALSE
          stack.push(false);
          break;
        case 0x4b: // BININT1
          stack.push(u8());
          break;
        case 0x4d: {
          // BININT2
          const lo = u8();
          stack.push(lo | (u8() << 8));
          break;
        }
        case 0x4a: // BININT (signed)
          stack.push(u32() | 0);
          break;
        case 0x47: {
          // BINFLOAT, big-endian
          need(8);
          stack.push(new WrittenFloat(new DataView(b.buffer, b.byteOffset + pos, 8).getFloat64(0, false)));
          pos += 8;
          break;
        }
        case 0x58: {
          // BINUNICODE
          const n = u32();
          need(n);
          stack.push(text(pos, pos + n));
          pos += n;
          break;
        }
        case 0x28: // MARK
          marks.push(stack.length);
          stack.push(MARK);
          break;
        case 0x29: // EMPTY_TUPLE
          stack.push(new WrittenTuple([]));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {
          // TUPLE1..3
          const items: WrittenValue[] = new Array(op - 0x84);
          for (let i = items.length - 1; i >= 0; i--) items[i] = pop();
          stack.push(tupleOf(items));
          break;
        }
        case 0x74: // TUPLE
          stack.push(tupleOf(popMark()));
          break;
        case 0x5d: // EMPTY_LIST
          stack.push(new WrittenList());
          break;
        case 0x7d: // EMPTY_DICT
          stack.push(new WrittenDict(false));
          break;
        case 0x61:
        case 0x65: {
          // APPEND, APPENDS
          const items = op === 0x61 ? [pop()] : popMark();
          const l = changing();
          if (!(l instanceof WrittenList)) throw new Malformed(`appends to a non-list at byte ${pos}`);
          if (streams(l)) for (const value of items) yield { root: l, key: rootIndex++, inList: true, value };
          else for (const v of items) l.items.push(v);
          break;
        }
        case 0x73:
        case 0x75: {
          // SETITEM, SETITEMS
          let items: WrittenValue[];
          if (op === 0x73) {
            const v = pop();
            items = [pop(), v];
          } else items = popMark();
          const d = changing();
          if (!(d instanceof WrittenDict) || items.length % 2) throw new Malformed(`sets items on a non-dict at byte ${pos}`);
          if (streams(d)) for (let i = 0; i < items.length; i += 2) yield { root: d, key: items[i]!, inList: false, value: items[i + 1]! };
          else
            for (let i = 0; i < items.length; i += 2) {
              d.keys.push(items[i]!);
              d.values.push(items[i + 1]!);
            }
          break;
        }
        case 0x71: {
          // BINPUT
          const i = u8();
          if (fetched === null || fetched.has(i)) memo[i] = top();
          else top();
          break;
        }
        case 0x72: {
          // LONG_BINPUT
          const i = u32();
          if (fetched === null || fetched.has(i)) memo[i] = top();
          else top();
          break;
        }
        case 0x68:
        case 0x6a: {
          // BINGET, LONG_BINGET
          const i = op === 0x68 ? u8() : u32();
          if (memo[i] === undefined) throw new Malformed(`gets memo entry ${i}, which was never put, at byte ${pos}`);
          stack.push(memo[i]!);
          break;
        }
        case 0x63: {
          // GLOBAL
          const module = line();
          const name = line();
          globals.add(`${module}.${name}`);
          stack.push(new WrittenGlobal(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = pop();
          stack.push(reduce(pop(), args));
          break;
        }
        case 0x51: // BINPERSID
          stack.push(storageId(pop()));
          break;
        case 0x62: {
          // BUILD: an OrderedDict's instance attributes
          const state = pop();
          const target = top();
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
    if (e instanceof TypeError) return { malformed: `has text that is not UTF-8 near byte ${pos}` };
    throw e;
  }
}
