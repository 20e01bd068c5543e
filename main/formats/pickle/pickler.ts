import { fail } from '../../errors.ts';
import { TorchStorage, TorchTensor } from '../values/torch-values.ts';
import { PyBytes, PyComplex, PyDict, PyFloat, PyGlobal, PyList, PyObject, PyPersistent, PySet, PyTuple, type PyValue } from '../values/python-values.ts';

/**
 * A protocol-2 pickle writer that uses only opcodes torch's weights-only unpickler accepts
 * (torch/_weights_only_unpickler.py in 1.13 and 2.x): GLOBAL (not STACK_GLOBAL), REDUCE, BUILD,
 * NEWOBJ, BINPERSID, the BIN* number and string forms, MARK/TUPLE*, EMPTY_* containers with
 * APPENDS/SETITEMS, BINPUT/BINGET. It writes what CPython's `pickle.Pickler(protocol=2)` would for
 * the same values, including Python 2 module names for builtins (`__builtin__.set`). One value needs
 * more: a tuple that holds itself, written with POP as CPython does, and an int of over 2040 bits,
 * written with LONG4 (`onWeightsOnlyRefusal`).
 */
/** What CPython writes with an opcode torch's weights-only unpickler lacks. */
export type WeightsOnlyRefusal = 'POP' | 'LONG4';

export interface PickleWriterOptions {
  /** The persistent id for a storage: torch's `('storage', type, key, location, numel)`. */
  storageId(s: TorchStorage): PyTuple;
  /** The recipe to write for a tensor (defaults to the tensor's own). */
  tensorRecipe?(t: TorchTensor): TensorRecipe;
  /**
   * False for a tensor the value holds at one place only: it takes its memo index but no memo
   * entry (nothing can ask for it again). Absent: every tensor gets an entry.
   */
  tensorMayRecur?(t: TorchTensor): boolean;
  /**
   * Called before writing what torch's weights-only unpickler refuses (torch/_weights_only_unpickler.py
   * has no POP, POP_MARK nor LONG4): 'POP' for a tuple that holds itself through a list, dict or
   * object (`t = ([],); t[0].append(t)`), which CPython writes with POP or POP_MARK; 'LONG4' for an
   * int of 256 bytes or more (over 2040 bits), which CPython's `save_long` writes with LONG4. Throw
   * to refuse. Absent: written so.
   */
  onWeightsOnlyRefusal?(what: WeightsOnlyRefusal): void;
}

export interface TensorRecipe {
  rebuild: PyGlobal;
  /**
   * null: the tensor's own plain arguments (`TorchTensor.args` of a tensor without a recipe of
   * its own), written from its fields without making them (100,000 tensors are otherwise
   * 400,000 objects, each garbage at once); with `freshArgs`, as that makes them.
   */
  args: PyValue[] | null;
  /**
   * True when the tuples and dicts among `args` were made for this recipe (`TorchTensor.args` of a
   * tensor without its own): nothing else can hold them, so they take memo indexes but no memo
   * entries. Kept, 500,000 tensors' size, stride and hooks objects stayed alive to the end.
   */
  freshArgs?: boolean;
}

/** Python 3 names that protocol 2 writes under their Python 2 names (CPython `_compat_pickle`). */
const REVERSE_MODULES: Record<string, string> = { builtins: '__builtin__', copyreg: 'copy_reg' };
/** every tensor's empty hooks dict is one: made once, not per tensor */
const ORDERED_DICT = new PyGlobal('collections', 'OrderedDict');

export function pickleValue(value: PyValue, opts: PickleWriterOptions): Uint8Array {
  const chunks: Uint8Array[] = [];
  pickleInto(value, opts, (chunk) => chunks.push(Buffer.from(chunk))); // a copy: the chunk is reused
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/**
 * `pickleValue`, its bytes handed to `sink` a chunk at a time (each chunk is reused once `sink`
 * returns). Returns the pickle's length. A 500,000-tensor state dict's pickle is 58 MB: written
 * into the archive as it is made, neither it nor the chunks it was gathered from are held.
 */
export function pickleInto(value: PyValue, opts: PickleWriterOptions, sink: (chunk: Uint8Array) => void): number {
  const out = new ByteWriter(sink);
  const memo = new Map<object, number>();
  out.byte(0x80, 2); // PROTO 2

  // memo indexes in order; `memo` holds only the objects that can be met again
  let memoCount = 0;
  const put = (obj: object | null): number => {
    const i = memoCount++;
    if (obj) memo.set(obj, i);
    if (i < 256)
      out.byte(0x71, i); // BINPUT
    else {
      out.byte(0x72); // LONG_BINPUT
      out.u32(i);
    }
    return i;
  };
  const getAt = (i: number): void => {
    if (i < 256)
      out.byte(0x68, i); // BINGET
    else {
      out.byte(0x6a); // LONG_BINGET
      out.u32(i);
    }
  };
  const get = (obj: object): boolean => {
    const i = memo.get(obj);
    if (i === undefined) return false;
    getAt(i);
    return true;
  };
  // Globals are memoized by name, as CPython memoizes the class object: module → name → memo
  // index (two lookups, no joined string per call: every tensor names its rebuild function).
  const globalMemo = new Map<string, Map<string, number>>();
  const global = (module: string, name: string): void => {
    let names = globalMemo.get(module);
    const known = names?.get(name);
    if (known !== undefined) return getAt(known);
    out.byte(0x63); // GLOBAL
    out.text(`${REVERSE_MODULES[module] ?? module}\n${name}\n`);
    if (!names) globalMemo.set(module, (names = new Map()));
    names.set(name, put(null));
  };
  /**
   * A tuple of `items`. Given `self` (a tuple that others may hold), returns false where saving
   * the items built and memoized `self` already: CPython memoizes a tuple after building it
   * (pickle.py `save_tuple`), so a tuple that holds itself through a list or dict
   * (`t = ([],); t[0].append(t)`) is built while its own items are saved. CPython then throws the
   * items away (POP per item, or POP_MARK) and GETs the tuple just built, and so does this.
   */
  const tuple = (items: PyValue[], saveItem: (v: PyValue) => void = save, self?: PyTuple): boolean => {
    const n = items.length;
    if (n === 0) {
      out.byte(0x29); // EMPTY_TUPLE
      return true;
    }
    if (n > 3) out.byte(0x28); // MARK
    for (let i = 0; i < n; i++) saveItem(items[i]!);
    const built = self && memo.get(self);
    if (built !== undefined) {
      opts.onWeightsOnlyRefusal?.('POP');
      if (n > 3)
        out.byte(0x31); // POP_MARK
      else for (let i = 0; i < n; i++) out.byte(0x30); // POP
      getAt(built);
      return false;
    }
    out.byte(n <= 3 ? 0x84 + n : 0x74); // TUPLE1..3, TUPLE
    return true;
  };
  /** `save` of a value nothing else holds: the same bytes, the memo index taken but not recorded */
  const saveUnshared = (v: PyValue): void => {
    if (v instanceof PyTuple && v.items.length) {
      tuple(v.items);
      put(null);
    } else if (v instanceof PyDict && v.ordered && v.size === 0 && !v.attrs) {
      reduce(ORDERED_DICT, []);
      put(null);
    } else save(v);
  };
  /**
   * `tuple(t.args, saveUnshared)` for a tensor whose `args` are made per read: (storage, offset,
   * size, stride, False, OrderedDict()), the same bytes from its fields (`TorchTensor.args`).
   */
  const plainArgs = (t: TorchTensor): void => {
    out.byte(0x28); // MARK
    save(t.storage);
    save(t.storageOffset);
    tuple(t.shape);
    put(null);
    tuple(t.stride);
    put(null);
    out.byte(0x89); // False: requires_grad
    reduce(ORDERED_DICT, []);
    put(null);
    out.byte(0x74); // TUPLE
  };
  // batches of 1000 as CPython's `_batch_setitems`, walked in place (no copy of each batch)
  const setItems = (pairs: [PyValue, PyValue][]): void => {
    for (let i = 0; i < pairs.length; i += 1000) {
      const end = Math.min(i + 1000, pairs.length);
      if (end - i === 1) {
        save(pairs[i]![0]);
        save(pairs[i]![1]);
        out.byte(0x73); // SETITEM
      } else {
        out.byte(0x28); // MARK
        for (let j = i; j < end; j++) {
          const pair = pairs[j]!;
          save(pair[0]);
          save(pair[1]);
        }
        out.byte(0x75); // SETITEMS
      }
    }
  };
  const appends = (items: PyValue[]): void => {
    for (let i = 0; i < items.length; i += 1000) {
      const batch = items.slice(i, i + 1000);
      if (batch.length === 1) {
        save(batch[0]!);
        out.byte(0x61); // APPEND
      } else {
        out.byte(0x28);
        batch.forEach(save);
        out.byte(0x65); // APPENDS
      }
    }
  };
  const reduce = (fn: PyValue, args: PyValue[]): void => {
    save(fn);
    tuple(args);
    out.byte(0x52); // REDUCE
  };

  function save(v: PyValue): void {
    if (v === null) return void out.byte(0x4e); // NONE
    if (v === true) return void out.byte(0x88);
    if (v === false) return void out.byte(0x89);
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) fail('internal', `cannot pickle ${v} as an int`);
      // shapes, strides, offsets: the common small ints without a BigInt each
      if (v >= 0 && v < 65536) return void (v < 256 ? out.byte(0x4b, v) : out.byte3(0x4d, v & 0xff, v >> 8)); // BININT1, BININT2
      return saveInt(out, BigInt(v), opts);
    }
    if (typeof v === 'bigint') return saveInt(out, v, opts);
    if (typeof v === 'string') return out.unicode(v); // BINUNICODE
    if (v instanceof PyFloat) {
      out.byte(0x47); // BINFLOAT, big-endian
      const b = Buffer.allocUnsafe(8);
      b.writeDoubleBE(v.value);
      out.bytes(b);
      return;
    }
    // persistent ids before the memo, as CPython's `save` does; globals are memoized by name
    if (v instanceof TorchStorage) {
      // a fresh tuple per call, as torch's `persistent_id` returns: memoized (CPython does), never met again
      tuple(opts.storageId(v).items);
      put(null);
      out.byte(0x51); // BINPERSID
      return;
    }
    if (v instanceof PyGlobal) return global(v.module, v.name);
    if (get(v)) return;
    if (v instanceof TorchTensor) {
      const r = opts.tensorRecipe?.(v) ?? { rebuild: v.rebuild, args: v.argsAreMadePerRead ? null : v.args, freshArgs: v.argsAreMadePerRead };
      if (r.args === null) {
        save(r.rebuild);
        plainArgs(v);
        out.byte(0x52); // REDUCE
      } else if (r.freshArgs) {
        save(r.rebuild);
        tuple(r.args, saveUnshared);
        out.byte(0x52); // REDUCE
      } else reduce(r.rebuild, r.args);
      put(opts.tensorMayRecur?.(v) === false ? null : v);
      return;
    }
    if (v instanceof PyTuple) {
      if (tuple(v.items, save, v)) put(v);
      return;
    }
    if (v instanceof PyList) {
      out.byte(0x5d); // EMPTY_LIST
      put(v);
      appends(v.items);
      return;
    }
    if (v instanceof PyDict) {
      if (v.ordered) {
        reduce(ORDERED_DICT, []);
        put(v);
      } else {
        out.byte(0x7d); // EMPTY_DICT
        put(v);
      }
      setItems(v.entries);
      if (v.attrs) {
        // OrderedDict.__reduce__ puts instance attributes (torch's `_metadata`) in the state.
        save(v.attrs);
        out.byte(0x62); // BUILD
      }
      return;
    }
    if (v instanceof PyBytes) {
      // Protocol 2 has no bytes opcode: CPython writes `_codecs.encode(latin1 text, 'latin1')`,
      // and `bytearray(latin1 text, 'latin-1')`.
      const text = Buffer.from(v.data).toString('latin1');
      const fn = builtinGlobalOf(v);
      reduce(fn, v.mutable ? [text, 'latin-1'] : v.data.length === 0 ? [] : [text, 'latin1']);
      put(v);
      return;
    }
    if (v instanceof PyComplex) {
      reduce(builtinGlobalOf(v), [new PyFloat(v.real), new PyFloat(v.imag)]);
      put(v);
      return;
    }
    if (v instanceof PySet) {
      reduce(builtinGlobalOf(v), [new PyList(v.items)]);
      put(v);
      return;
    }
    if (v instanceof PyObject) {
      if (v.kwargs) fail('unsupported', `object ${v.className} was built with keyword arguments (NEWOBJ_EX), which protocol 2 cannot write`);
      if (v.via === 'newobj') {
        save(v.callable);
        tuple(v.args);
        out.byte(0x81); // NEWOBJ
      } else reduce(v.callable, v.args);
      put(v);
      if (v.listItems.length) appends(v.listItems);
      if (v.dictItems.length) setItems(v.dictItems);
      if (v.state !== undefined) {
        save(v.state);
        out.byte(0x62); // BUILD
      }
      return;
    }
    if (v instanceof PyPersistent) {
      save(v.pid);
      out.byte(0x51);
      return;
    }
    fail('internal', `cannot pickle a value of type ${(v as object)?.constructor?.name}`);
  }

  save(value);
  out.byte(0x2e); // STOP
  return out.done();
}

const BYTEARRAY = new PyGlobal('builtins', 'bytearray');
const EMPTY_BYTES = new PyGlobal('builtins', 'bytes');
const CODECS_ENCODE = new PyGlobal('_codecs', 'encode');
const COMPLEX = new PyGlobal('builtins', 'complex');
const SET = new PyGlobal('builtins', 'set');
const FROZENSET = new PyGlobal('builtins', 'frozenset');

/**
 * The global the writer names for a value that holds none itself: bytes, bytearray, complex, set,
 * frozenset are written as calls (protocol 2 has no opcode for them), so an output holding one
 * names that global, and torch's weights-only unpickler judges it like any other
 * (torch 2.13 allows `_codecs.encode`, `builtins.bytearray`, `set`, `complex`, but not
 * `builtins.frozenset` nor the `builtins.bytes` CPython writes for b''). Null for other values.
 */
export function builtinGlobalOf(v: PyValue): PyGlobal | null {
  if (v instanceof PyBytes) return v.mutable ? BYTEARRAY : v.data.length === 0 ? EMPTY_BYTES : CODECS_ENCODE;
  if (v instanceof PyComplex) return COMPLEX;
  if (v instanceof PySet) return v.frozen ? FROZENSET : SET;
  return null;
}

function saveInt(out: ByteWriter, v: bigint, opts: PickleWriterOptions): void {
  if (v >= 0n && v < 256n) return void out.byte(0x4b, Number(v)); // BININT1
  if (v >= 0n && v < 65536n) {
    out.byte(0x4d); // BININT2
    out.byte(Number(v & 0xffn), Number(v >> 8n));
    return;
  }
  if (v >= -(2n ** 31n) && v < 2n ** 31n) {
    out.byte(0x4a); // BININT
    out.u32(Number(BigInt.asUintN(32, v)));
    return;
  }
  // LONG1 / LONG4: little-endian two's complement, the fewest bytes that keep the sign
  // (CPython's Lib/pickle.py, `save_long` and `encode_long`); LONG1 holds at most 255 bytes.
  const bytes = encodeLong(v);
  if (bytes.length < 256) out.byte(0x8a, bytes.length);
  else {
    opts.onWeightsOnlyRefusal?.('LONG4');
    out.byte(0x8b); // LONG4
    out.u32(bytes.length);
  }
  out.bytes(bytes);
}

/**
 * An int as CPython's `encode_long` writes it, in linear time: BigInt's hex conversion is linear,
 * where peeling off one byte at a time is quadratic in the number of digits.
 */
export function encodeLong(v: bigint): Uint8Array {
  if (v === 0n) return new Uint8Array(0);
  // the magnitude that must fit below the sign bit: v for v ≥ 0, -v-1 for v < 0
  const magnitude = v >= 0n ? v : -v - 1n;
  const hexDigits = magnitude === 0n ? 0 : magnitude.toString(16).length;
  let n = Math.ceil(hexDigits / 2);
  if (n === 0 || magnitude >> BigInt(8 * n - 1) !== 0n) n++; // the top bit is taken: one more byte for the sign
  const hex = BigInt.asUintN(8 * n, v)
    .toString(16)
    .padStart(2 * n, '0');
  return Buffer.from(hex, 'hex').reverse();
}

/** In unicode mode a surrogate pair is one code point: this matches only the lone ones. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Pickle bytes in one buffer, handed to `sink` whenever the next write does not fit, then reused. */
class ByteWriter {
  private cur = Buffer.allocUnsafe(1 << 16);
  private at = 0;
  private total = 0;
  constructor(private readonly sink: (chunk: Uint8Array) => void) {}
  private ensure(n: number): void {
    if (this.at + n <= this.cur.length) return;
    this.pass();
    if (n > this.cur.length) this.cur = Buffer.allocUnsafe(n);
  }
  private pass(): void {
    if (this.at === 0) return;
    this.sink(this.cur.subarray(0, this.at));
    this.total += this.at;
    this.at = 0;
  }
  byte(a: number, b?: number): void {
    this.ensure(2);
    this.cur[this.at++] = a;
    if (b !== undefined) this.cur[this.at++] = b;
  }
  byte3(a: number, b: number, c: number): void {
    this.ensure(3);
    this.cur[this.at++] = a;
    this.cur[this.at++] = b;
    this.cur[this.at++] = c;
  }
  /** BINUNICODE: opcode, UTF-8 length, UTF-8 bytes, encoded in place (no buffer per string). */
  unicode(s: string): void {
    this.ensure(5 + 3 * s.length);
    const n = s.length <= 64 ? this.ascii(s, this.at + 5) : this.utf8(s, this.at + 5);
    this.cur[this.at] = 0x58;
    this.cur.writeUInt32LE(n, this.at + 1);
    this.at += 5 + n;
  }
  /** A short key as bytes, one by one (cheaper than a native call for each of 100,000 keys); non-ASCII goes to UTF-8. */
  private ascii(s: string, at: number): number {
    const cur = this.cur;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return this.utf8(s, at);
      cur[at + i] = c;
    }
    return s.length;
  }
  /**
   * `s.encode('utf-8', 'surrogatepass')`, as CPython's `save_str` writes BINUNICODE (Lib/pickle.py):
   * a lone surrogate (`'\ud800'`, legal in a Python str) becomes its 3-byte form ED A0..BF xx,
   * which the unpickler decodes back with 'surrogatepass'. Buffer's UTF-8 writes U+FFFD for it.
   */
  private utf8(s: string, at: number): number {
    if (!LONE_SURROGATE.test(s)) return this.cur.write(s, at, 'utf8');
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const next = s.charCodeAt(i + 1); // NaN past the end
      if (c >= 0xd800 && c < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
        n += this.cur.write(s.slice(i, i + 2), at + n, 'utf8'); // a pair: one 4-byte character
        i++;
      } else if (c >= 0xd800 && c < 0xe000) {
        this.cur[at + n++] = 0xe0 | (c >> 12);
        this.cur[at + n++] = 0x80 | ((c >> 6) & 0x3f);
        this.cur[at + n++] = 0x80 | (c & 0x3f);
      } else n += this.cur.write(s[i]!, at + n, 'utf8');
    }
    return n;
  }
  u32(v: number): void {
    this.ensure(4);
    this.cur.writeUInt32LE(v >>> 0, this.at);
    this.at += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.cur.set(b, this.at);
    this.at += b.length;
  }
  text(s: string): void {
    this.bytes(Buffer.from(s, 'utf8'));
  }
  /** Hands over what is left; returns the length of all bytes written. */
  done(): number {
    this.pass();
    return this.total;
  }
}
