/**
 * The Python values a pickle can hold, as plain TypeScript data. The pickle VM builds these and
 * never runs anything: a call to an unknown callable becomes a `PyObject` that keeps its recipe
 * (callable, arguments, state, appended items), so it can be shown and written back unchanged.
 *
 * Python `int` is a JS `number` when it is a safe integer and a `bigint` otherwise; Python
 * `float` is a `PyFloat` so that `10` and `10.0` stay distinct through a round trip.
 */
import type { TorchStorage, TorchTensor } from './torch-values.ts';
import { fail } from '../../errors.ts';
import { StringIndex } from './string-index.ts';

export type PyValue =
  | TorchTensor
  | TorchStorage
  | null
  | boolean
  | number
  | bigint
  | string
  | PyFloat
  | PyComplex
  | PyBytes
  | PyList
  | PyTuple
  | PyDict
  | PySet
  | PyGlobal
  | PyObject
  | PyPersistent;

export class PyFloat {
  constructor(readonly value: number) {}
}

export class PyComplex {
  constructor(
    readonly real: number,
    readonly imag: number,
  ) {}
}

/** `bytes` (or `bytearray` when `mutable`). */
export class PyBytes {
  constructor(
    readonly data: Uint8Array,
    readonly mutable = false,
  ) {}
}

export class PyList {
  constructor(public items: PyValue[] = []) {}
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** Dicts with fewer entries find a str key by looking at each. */
const SMALL_DICT = 8;

/**
 * `dict`, or `collections.OrderedDict` when `ordered`. Keys keep insertion order; a later set of
 * an equal key replaces the value in place, as in Python. `attrs` holds instance attributes set by
 * BUILD, which is where torch keeps a state dict's `_metadata`.
 */
export class PyDict {
  readonly entries: [PyValue, PyValue][] = [];
  /**
   * Made when a dict reaches SMALL_DICT entries (most dicts are a tensor's empty OrderedDict of
   * hooks or a module's `{'version': 1}`). A str key is its own index key: it equals only the same
   * str, so it needs no `hashKey` text; other hashable keys go by their `hashKey` in a Map.
   */
  private strIndex: StringIndex | null = null;
  private index: Map<string, number> | null = null;
  attrs: PyDict | null = null;
  constructor(public ordered = false) {}

  set(key: PyValue, value: PyValue): void {
    if (typeof key === 'string') {
      const at = this.strIndex ? this.strIndex.addUnlessPresent(key, this.entries.length) : this.strAt(key);
      if (at !== undefined) {
        this.entries[at]![1] = value;
        return;
      }
      if (!this.strIndex && this.entries.length >= SMALL_DICT) {
        const index = (this.strIndex = new StringIndex((i) => this.entries[i]![0]));
        this.entries.forEach(([k], i) => typeof k === 'string' && index.add(k, i));
        index.add(key, this.entries.length);
      }
    } else {
      const h = hashKey(key);
      if (h !== null) {
        const index = (this.index ??= new Map());
        const at = index.get(h);
        if (at !== undefined) {
          this.entries[at]![1] = value;
          return;
        }
        index.set(h, this.entries.length);
      }
    }
    this.entries.push([key, value]);
  }
  get(key: PyValue): PyValue | undefined {
    const at = typeof key === 'string' ? this.strAt(key) : this.indexOf(key);
    return at === undefined ? undefined : this.entries[at]![1];
  }
  /** A small dict is searched in order: most dicts are a module's `{'version': 1}` metadata */
  private strAt(key: string): number | undefined {
    if (this.strIndex) return this.strIndex.get(key);
    for (let i = 0; i < this.entries.length; i++) if (this.entries[i]![0] === key) return i;
    return undefined;
  }
  private indexOf(key: PyValue): number | undefined {
    const h = hashKey(key);
    return h === null ? undefined : this.index?.get(h);
  }
  has(key: PyValue): boolean {
    return this.get(key) !== undefined;
  }
  get size(): number {
    return this.entries.length;
  }
  /** True when every key is a string (a candidate state dict). */
  allStringKeys(): boolean {
    // indexed, not `every(([k]) => …)`: a state dict's 100,000 keys, read once, mostly unoptimized
    for (let i = 0; i < this.entries.length; i++) if (typeof this.entries[i]![0] !== 'string') return false;
    return true;
  }
}

export class PySet {
  constructor(
    readonly items: PyValue[],
    readonly frozen = false,
  ) {}
}

/** A reference to a module-level name, e.g. `torch.float32` or `os.system`. */
export class PyGlobal {
  /** `module.name`, made once: a 100,000-tensor pickle calls the same two globals 200,000 times */
  declare readonly fullName: string;
  constructor(
    readonly module: string,
    readonly name: string,
  ) {
    // not enumerable: a global is still compared, cloned and printed by its module and name alone
    Object.defineProperty(this, 'fullName', { value: `${module}.${name}`, enumerable: false });
  }
}

/**
 * The result of REDUCE / NEWOBJ / INST / OBJ on a callable the VM does not interpret.
 * Everything needed to write it back is kept.
 */
export class PyObject {
  state: PyValue | undefined = undefined;
  readonly listItems: PyValue[] = [];
  readonly dictItems: [PyValue, PyValue][] = [];
  constructor(
    readonly callable: PyValue,
    readonly args: PyValue[],
    /** 'reduce' for REDUCE/INST/OBJ, 'newobj' for NEWOBJ(_EX): `cls.__new__(cls, *args)`. */
    readonly via: 'reduce' | 'newobj',
    readonly kwargs: PyDict | null = null,
  ) {}
  get className(): string {
    return this.callable instanceof PyGlobal ? this.callable.fullName : '<dynamic>';
  }
}

/** What PERSID/BINPERSID produced, when the persistent loader does not interpret it. */
export class PyPersistent {
  constructor(readonly pid: PyValue) {}
}

/** A stable string for hashable keys (str, int, float, bool, None, bytes, tuples of those). */
/**
 * The items of a shape as pickles carry it: a `torch.Size` (reduced to `torch.Size((…))`), a
 * tuple or a list; null for anything else. Callers check the items are the sizes they expect.
 */
export function shapeItems(v: PyValue | undefined): PyValue[] | null {
  if (v instanceof PyObject && v.className === 'torch.Size' && v.args[0] instanceof PyTuple) return v.args[0].items;
  return v instanceof PyTuple || v instanceof PyList ? v.items : null;
}

export function hashKey(key: PyValue): string | null {
  if (key === null) return 'N';
  switch (typeof key) {
    case 'string':
      return 's' + key;
    case 'number':
      return 'i' + key;
    case 'bigint':
      return 'i' + key.toString();
    case 'boolean':
      return key ? 'i1' : 'i0';
  }
  // NaN equals nothing, itself included; CPython's pickler never memoizes a float (Lib/pickle.py
  // `save_float`), so each NaN key read back is its own object and its own key: two NaN keys stay two
  if (key instanceof PyFloat) return Number.isInteger(key.value) ? 'i' + key.value : Number.isNaN(key.value) ? null : 'f' + key.value;
  if (key instanceof PyBytes) return 'b' + Buffer.from(key.data).toString('latin1');
  if (key instanceof PyTuple) return tupleHash(key);
  if (key instanceof PyGlobal) return 'g' + key.fullName;
  return null;
}

/** The longest hash text a tuple key may expand to: real keys are names and small tuples. */
export const MAX_KEY_TEXT = 1 << 20;
const tupleHashes = new WeakMap<PyTuple, string | null>();

/**
 * A tuple's hash text, computed once per tuple. A tuple that holds a shared tuple twice doubles
 * its text at every level (60 levels in a 1 KB pickle would need 2^60 characters), so the text
 * is bounded and a key past the bound is an error rather than hours of work.
 */
function tupleHash(key: PyTuple): string | null {
  const known = tupleHashes.get(key);
  if (known !== undefined) return known;
  const parts: string[] = [];
  let length = 3;
  let hash: string | null = null;
  for (const item of key.items) {
    const p = hashKey(item);
    if (p === null) {
      tupleHashes.set(key, null);
      return null;
    }
    length += p.length + 1;
    if (length > MAX_KEY_TEXT)
      fail(
        'too-large',
        `a dict key is a tuple that expands to more than ${MAX_KEY_TEXT} characters (nested tuples that share one another); no checkpoint has such a key`,
      );
    parts.push(p);
  }
  hash = 't(' + parts.join(',') + ')';
  tupleHashes.set(key, hash);
  return hash;
}

/** Short Python-like text for a value, for display and error messages. */
export function pyRepr(v: PyValue | unknown, depth = 0): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'bigint') return bigintText(v);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v);
  if (v instanceof PyFloat) return Number.isInteger(v.value) ? v.value.toFixed(1) : String(v.value);
  if (v instanceof PyComplex) return `(${v.real}+${v.imag}j)`;
  if (v instanceof PyBytes) return `${v.mutable ? 'bytearray' : 'bytes'}(${v.data.length})`;
  if (depth > 2) return '...';
  if (v instanceof PyList)
    return `[${v.items
      .slice(0, 4)
      .map((x) => pyRepr(x, depth + 1))
      .join(', ')}${v.items.length > 4 ? ', ...' : ''}]`;
  if (v instanceof PyTuple)
    return `(${v.items
      .slice(0, 4)
      .map((x) => pyRepr(x, depth + 1))
      .join(', ')}${v.items.length > 4 ? ', ...' : v.items.length === 1 ? ',' : ''})`;
  if (v instanceof PyDict)
    return `{${v.entries
      .slice(0, 3)
      .map(([k, x]) => `${pyRepr(k, depth + 1)}: ${pyRepr(x, depth + 1)}`)
      .join(', ')}${v.size > 3 ? ', ...' : ''}}`;
  if (v instanceof PySet) return `${v.frozen ? 'frozenset' : 'set'}(${v.items.length})`;
  if (v instanceof PyGlobal) return v.fullName;
  if (v instanceof PyObject) return `${v.className}(...)`;
  if (v instanceof PyPersistent) return `persistent(${pyRepr(v.pid, depth + 1)})`;
  if (v && typeof v === 'object' && 'describe' in v && typeof (v as { describe: unknown }).describe === 'function')
    return (v as { describe(): string }).describe();
  return String(v);
}

/**
 * An int as decimal text, or its size when it is too long to show: CPython itself refuses to
 * print an int of more than 4300 digits (`sys.int_info.default_max_str_digits`).
 */
export function bigintText(v: bigint): string {
  const bits = (v < 0n ? -v : v).toString(16).length * 4;
  return bits > 14_000 ? `<int of about ${bits} bits>` : String(v);
}
