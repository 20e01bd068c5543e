import { CheckpointError, fail } from '../../errors.ts';
import { MAX_NESTING, nestingDepth } from './nesting.ts';
import type { PickleInput } from './pickle-input.ts';
import { PickleMemo } from './memo.ts';
import { memoReads } from './memo-reads.ts';
import { MAX_KEPT_STRING, scanText, type OpcodeArg, type OpcodeObserver } from './opcode-observer.ts';
import { utf8SurrogatePass } from './pickle-text.ts';
import { PyBytes, PyComplex, PyDict, PyFloat, PyGlobal, PyList, PyObject, PyPersistent, PySet, PyTuple, type PyValue } from '../values/python-values.ts';

/**
 * A pickle reader for protocols 0–5 that never executes anything (CPython's Lib/pickle.py,
 * `_Unpickler`, is the reference for every opcode here). Calls of known, harmless names are
 * interpreted (OrderedDict, set, bytearray, complex, `_codecs.encode`, `copyreg._reconstructor`);
 * format layers add more through `PickleHooks`; everything else becomes a `PyObject` recipe.
 */
export interface PickleHooks {
  /** PERSID / BINPERSID. Without a hook the id is kept as a `PyPersistent`. */
  persistentLoad?(pid: PyValue): PyValue;
  /** REDUCE / NEWOBJ of a callable: return a value, or undefined to keep an opaque `PyObject`. */
  call?(callable: PyValue, args: PyValue[], via: 'reduce' | 'newobj'): PyValue | undefined;
  /**
   * BUILD: return true when the target was updated in place, or a new value that replaces the
   * target everywhere it is referenced (stack and memo), or undefined to let the VM handle it.
   */
  build?(target: PyValue, state: PyValue): true | PyValue | undefined;
  /**
   * Reads, in one step each, the items a format writes by the thousand (torch.save's str → tensor
   * items: formats/torch/fast-items.ts). Tried where a string opcode at `at` starts inside a MARK;
   * returns the offset after the last item it read, or `at` for none. From there the VM reads on
   * opcode by opcode, so anything outside the reader's grammar meets every check of the VM.
   */
  items?(site: ItemSite, at: number): number;
}

/**
 * What `PickleHooks.items` may touch of the VM. An item it reads must leave exactly what the VM
 * would have left reading the same opcodes: the same memo entries, the same values pushed on the
 * current MARK's items, the same call counts and opcodes seen, and the scan told (`skipTensorItem`).
 */
export interface ItemSite {
  /** the whole pickle; offsets are indices into it */
  readonly bytes: Uint8Array;
  readonly end: number;
  readonly memo: PickleMemo<PyValue>;
  readonly scan: OpcodeObserver | undefined;
  /** `opcodes[op]` is set to 1 for every opcode the pickle uses (`UnpickleResult.opcodes`) */
  readonly opcodes: Uint8Array;
  /** whether the VM has room for an item: two more MARKs and two more values */
  room(): boolean;
  /** pushes onto the current MARK's items */
  push(v: PyValue): void;
  /** counts a call of `g`, as REDUCE does (`UnpickleResult.globals`) */
  called(g: PyGlobal): void;
}

export interface UnpickleResult {
  value: PyValue;
  /** every global referenced, `module.name` → number of times it was called */
  globals: Map<string, { module: string; name: string; calls: number }>;
  /** highest protocol seen (0 when no PROTO opcode) */
  protocol: number;
  /** `opcodes[op]` is 1 for every opcode the pickle used (torch's weights-only unpickler implements a subset) */
  opcodes: Uint8Array;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/**
 * The empty stack a MARK opens, made with elements of any kind: a `[]` starts as small integers
 * only, and the first string pushed changes its map. `torch.save` opens a MARK per 1,000 dict
 * items, so every batch of a state dict began with an array of another map than the one the
 * optimized item reader (`fast-items.ts`) had seen: readItem and take were deoptimized ("wrong
 * map", "not a Smi") and compiled again on the 100,000-tensor checkpoint.
 */
function emptyFrame(): StackItem[] {
  const frame: StackItem[] = [MARK];
  frame.pop();
  return frame;
}

/** Python 2 module names as Python 3's `_compat_pickle` maps them (IMPORT_MAPPING). */
const MODULE_RENAMES: Record<string, string> = {
  __builtin__: 'builtins',
  copy_reg: 'copyreg',
  cPickle: 'pickle',
  exceptions: 'builtins',
  UserDict: 'collections',
  urllib2: 'urllib.request',
};
/** Python 2 names that moved (`_compat_pickle.NAME_MAPPING`). */
const NAME_RENAMES: Record<string, [string, string]> = {
  '__builtin__.xrange': ['builtins', 'range'],
  '__builtin__.unicode': ['builtins', 'str'],
  '__builtin__.basestring': ['builtins', 'str'],
  '__builtin__.long': ['builtins', 'int'],
  '__builtin__.unichr': ['builtins', 'chr'],
  '__builtin__.raw_input': ['builtins', 'input'],
  '__builtin__.reduce': ['functools', 'reduce'],
  '__builtin__.intern': ['sys', 'intern'],
  '__builtin__.execfile': ['builtins', 'exec'],
  'itertools.izip': ['builtins', 'zip'],
  'itertools.imap': ['builtins', 'map'],
  'itertools.ifilter': ['builtins', 'filter'],
  'UserDict.UserDict': ['collections', 'UserDict'],
  'string.maketrans': ['bytes', 'maketrans'],
};

/** Nesting limits: CPython recurses and would hit its recursion limit long before these. */
const MAX_STACK = 1_000_000;

/**
 * `scan`, when given, is fed every opcode with its argument as the unpickler reads it: the value
 * and the security scan of the same bytes come from one walk (inspect, and convert's read-back).
 */
export function unpickle(input: PickleInput, hooks: PickleHooks = {}, label = 'pickle', scan?: OpcodeObserver): UnpickleResult {
  try {
    return runUnpickler(input, hooks, label, scan);
  } catch (e) {
    throw namingTheFile(e, input, label);
  }
}

/**
 * An error from inside the VM (a bounded key, a stack the input exhausted) told as this file's:
 * the message names the file and the byte, never "a declared size" that was never declared.
 */
function namingTheFile(e: unknown, input: PickleInput, label: string): unknown {
  const at = `${input.name}: ${label} at byte ${input.pos}`;
  if (e instanceof CheckpointError) return e.file ? e : new CheckpointError(e.kind, `${at}: ${e.message}`, input.name);
  if (e instanceof RangeError) return new CheckpointError('bad-pickle', `${at}: the structure is too deep or too large to read (${e.message})`, input.name);
  return e;
}

/**
 * The VM's stack, memo and globals, with the operations every opcode uses. A class (not closures
 * made per call): a batch unpickles hundreds of files per thread, and closures re-created on every
 * call were compiled by V8 again and again (138 compiles in a third pass over 200 files); methods
 * are compiled once per thread.
 */
class UnpicklerVm {
  readonly stack: StackItem[] = [];
  readonly metastack: StackItem[][] = [];
  cur: StackItem[] = this.stack;
  readonly globals = new Map<string, { module: string; name: string; calls: number }>();

  constructor(
    readonly input: PickleInput,
    readonly hooks: PickleHooks,
    readonly label: string,
    readonly memo: PickleMemo<PyValue>,
  ) {}

  bad(what: string): never {
    const name = this.input.name;
    return fail('bad-pickle', `${name}: ${this.label} is malformed at byte ${this.input.pos}: ${what}`, name);
  }
  push(v: StackItem): void {
    if (this.cur.length >= MAX_STACK) this.bad('stack too deep');
    this.cur.push(v);
  }
  pop(): PyValue {
    if (this.cur.length === 0) this.bad('stack underflow');
    const v = this.cur.pop()!;
    if (v === MARK) this.bad('unexpected MARK');
    return v as PyValue;
  }
  top(): PyValue {
    const cur = this.cur;
    const v = cur[cur.length - 1];
    if (v === undefined || v === MARK) this.bad('stack underflow');
    return v as PyValue;
  }
  popMark(): PyValue[] {
    const items = this.cur as PyValue[];
    const prev = this.metastack.pop();
    if (prev === undefined) this.bad('no MARK to pop to');
    this.cur = prev!;
    return items;
  }
  noteGlobal(module: string, nm: string, called: boolean, key = `${module}.${nm}`): void {
    let g = this.globals.get(key);
    if (!g) this.globals.set(key, (g = { module, name: nm, calls: 0 }));
    if (called) g.calls++;
  }
  makeGlobal(module: string, nm: string): PyGlobal {
    const renamed = NAME_RENAMES[`${module}.${nm}`];
    if (renamed) [module, nm] = renamed;
    else module = MODULE_RENAMES[module] ?? module;
    this.noteGlobal(module, nm, false);
    return new PyGlobal(module, nm);
  }
  call(callable: PyValue, args: PyValue[], via: 'reduce' | 'newobj', kwargs: PyDict | null = null): PyValue {
    if (callable instanceof PyGlobal) this.noteGlobal(callable.module, callable.name, true, callable.fullName);
    const known = interpretBuiltinCall(callable, args);
    if (known !== undefined) return known;
    const hooked = this.hooks.call?.(callable, args, via);
    if (hooked !== undefined) return hooked;
    return new PyObject(callable, args, via, kwargs);
  }
  getMemo(i: number): PyValue {
    const v = this.memo.get(i);
    if (v === undefined) this.bad(`memo key ${i} was never stored`);
    return v!;
  }
  setItems(target: PyValue, kv: PyValue[]): void {
    if (kv.length % 2) this.bad('SETITEMS with an odd number of items');
    for (let i = 0; i < kv.length; i += 2) {
      if (target instanceof PyDict) target.set(kv[i]!, kv[i + 1]!);
      else if (target instanceof PyObject) target.dictItems.push([kv[i]!, kv[i + 1]!]);
      else this.bad('SETITEM on a value that is not a dict');
    }
  }
  appendItems(target: PyValue, items: PyValue[]): void {
    if (target instanceof PyList)
      for (const x of items) target.items.push(x); // no push(...items): 100k+ arguments overflow the JS stack
    else if (target instanceof PyObject) for (const x of items) target.listItems.push(x);
    else this.bad('APPEND on a value that is not a list');
  }
}

/** What `PickleHooks.items` sees of a VM (a class for the reason `UnpicklerVm` is one). */
class VmItemSite implements ItemSite {
  constructor(
    private readonly vm: UnpicklerVm,
    readonly bytes: Uint8Array,
    readonly end: number,
    readonly scan: OpcodeObserver | undefined,
    readonly opcodes: Uint8Array,
  ) {}
  get memo(): PickleMemo<PyValue> {
    return this.vm.memo;
  }
  room(): boolean {
    return this.vm.cur.length + 2 <= MAX_STACK && this.vm.metastack.length + 2 <= MAX_STACK;
  }
  push(v: PyValue): void {
    this.vm.cur.push(v);
  }
  called(g: PyGlobal): void {
    this.vm.noteGlobal(g.module, g.name, true, g.fullName);
  }
}

function runUnpickler(input: PickleInput, hooks: PickleHooks, label: string, scan: OpcodeObserver | undefined): UnpickleResult {
  // values never read back from the memo are not held in it (see `memoReads`)
  const reads = memoReads(input.fork());
  if (reads) scan?.memoReadsAre?.(reads);
  const memo = new PickleMemo<PyValue>(reads);
  const vm = new UnpicklerVm(input, hooks, label, memo);
  const bad = (what: string): never => vm.bad(what); // handed to the text parsers; called only on bad input
  let protocol = 0;

  const opcodes = new Uint8Array(256);
  const bytes = input.inMemory;
  const site: ItemSite | null = hooks.items && bytes ? new VmItemSite(vm, bytes, input.end, scan, opcodes) : null;
  for (;;) {
    const at = input.pos;
    const op = input.byte();
    opcodes[op] = 1;
    /** the argument as the scan keeps it (`ScanOperand`) */
    let arg: OpcodeArg;
    switch (op) {
      case 0x80: {
        // PROTO
        protocol = input.byte();
        arg = protocol;
        if (protocol > 5) vm.bad(`unsupported pickle protocol ${protocol}`);
        break;
      }
      case 0x95: // FRAME: a length prefix for the frame; the bytes follow inline (the scan checks it)
        arg = input.frameLength();
        break;
      case 0x2e: {
        // STOP
        const v = vm.pop();
        if (nestingDepth(v) > MAX_NESTING)
          vm.bad(
            `the value is nested more than ${MAX_NESTING} levels deep; torch.save cannot write that (Python's pickler stops at its recursion limit, 1000)`,
          );
        scan?.feed(op, at, undefined);
        return { value: v, globals: vm.globals, protocol, opcodes };
      }
      case 0x28: // MARK
        if (vm.metastack.length >= MAX_STACK) vm.bad('too many nested MARKs'); // each open MARK holds an array
        vm.metastack.push(vm.cur);
        vm.cur = emptyFrame();
        break;
      case 0x30: // POP
        if (vm.cur.length === 0) {
          vm.popMark();
          break;
        } // as CPython's load_pop: with nothing above the MARK, POP drops the MARK
        if (vm.cur[vm.cur.length - 1] === MARK) vm.popMark();
        else vm.cur.pop();
        break;
      case 0x31: // POP_MARK
        vm.popMark();
        break;
      case 0x32: // DUP
        vm.push(vm.top());
        break;
      // ---- numbers
      case 0x4e:
        vm.push(null);
        break; // NONE
      case 0x88:
        vm.push(true);
        break; // NEWTRUE
      case 0x89:
        vm.push(false);
        break; // NEWFALSE
      case 0x4a:
        vm.push((arg = input.int32()));
        break; // BININT
      case 0x4b:
        vm.push((arg = input.byte()));
        break; // BININT1
      case 0x4d:
        vm.push((arg = input.uint16()));
        break; // BININT2
      case 0x8a: {
        const v = decodeLong(input.bytes(input.byte()));
        vm.push((arg = v));
        break; // LONG1
      }
      case 0x8b: {
        // LONG4
        const n = input.int32();
        if (n < 0) vm.bad('negative LONG4 length');
        const v = decodeLong(input.bytes(n));
        arg = n > 64 ? 0 : v; // the scan keeps the value of a short one only
        vm.push(v);
        break;
      }
      case 0x47:
        vm.push(new PyFloat(input.float64be()));
        break; // BINFLOAT
      case 0x49: {
        // INT (text): also protocol 0's True/False
        const s = input.line();
        arg = s;
        if (s === '01') vm.push(true);
        else if (s === '00') vm.push(false);
        else vm.push(parseIntText(s, bad));
        break;
      }
      case 0x4c:
        vm.push(parseIntText((arg = input.line()).replace(/L$/, ''), bad));
        break; // LONG (text)
      case 0x46: {
        // FLOAT (text)
        const s = input.line();
        const f = /^\s*[-+]?inf(inity)?\s*$/i.test(s) ? (s.includes('-') ? -Infinity : Infinity) : Number(s); // Python writes inf as 'inf'
        if (Number.isNaN(f) && !/nan/i.test(s)) vm.bad('bad FLOAT text');
        vm.push(new PyFloat(f));
        break;
      }
      // ---- strings and bytes
      case 0x58:
      case 0x8c:
      case 0x8d: {
        // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
        if (site && vm.cur !== vm.stack) {
          const after = hooks.items!(site, at);
          if (after !== at) {
            input.pos = after;
            continue; // the items told the scan themselves
          }
        }
        const n = op === 0x8c ? input.byte() : op === 0x58 ? input.uint32() : input.uint64();
        const ascii = input.asciiText(n); // an ASCII string is its own scan text
        if (ascii !== null) {
          vm.push((arg = ascii));
          break;
        }
        const b = input.bytes(n);
        const s = utf8SurrogatePass(b, false);
        arg = scanTextOf(b, s);
        vm.push(s);
        break;
      }
      case 0x56:
        vm.push(rawUnicodeEscape((arg = input.line()), bad));
        break; // UNICODE (text)
      case 0x53:
        vm.push(py2str(latin1(parseQuotedString((arg = input.line()), bad))));
        break; // STRING (text, Python 2 str; escapes give bytes, decoded like BINSTRING)
      case 0x54: {
        // BINSTRING: Python 2 str, decoded the way torch's loader does (utf-8, latin-1 fallback)
        const n = input.int32();
        if (n < 0) vm.bad('negative BINSTRING length');
        const b = input.bytes(n);
        arg = scanText(b);
        vm.push(py2str(b));
        break;
      }
      case 0x55: {
        const b = input.bytes(input.byte());
        arg = scanText(b);
        vm.push(py2str(b));
        break; // SHORT_BINSTRING
      }
      case 0x42:
      case 0x43:
      case 0x8e:
      case 0x96: {
        // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
        const b = copy(input.bytes(op === 0x43 ? input.byte() : op === 0x42 ? input.uint32() : input.uint64()));
        arg = b.length;
        vm.push(new PyBytes(b, op === 0x96));
        break;
      }
      case 0x97:
        vm.bad('NEXT_BUFFER needs out-of-band buffers, which checkpoints never carry');
        break;
      case 0x98:
        break; // READONLY_BUFFER: no-op on our immutable values
      // ---- containers
      case 0x29:
        vm.push(new PyTuple([]));
        break; // EMPTY_TUPLE
      case 0x74:
        vm.push(new PyTuple(vm.popMark()));
        break; // TUPLE
      case 0x85:
        vm.push(new PyTuple([vm.pop()]));
        break; // TUPLE1
      case 0x86: {
        const b = vm.pop();
        const a = vm.pop();
        vm.push(new PyTuple([a, b]));
        break;
      } // TUPLE2
      case 0x87: {
        const c = vm.pop();
        const b = vm.pop();
        const a = vm.pop();
        vm.push(new PyTuple([a, b, c]));
        break;
      } // TUPLE3
      case 0x5d:
        vm.push(new PyList());
        break; // EMPTY_LIST
      case 0x6c:
        vm.push(new PyList(vm.popMark()));
        break; // LIST
      case 0x7d:
        vm.push(new PyDict());
        break; // EMPTY_DICT
      case 0x64: {
        // DICT
        const d = new PyDict();
        vm.setItems(d, vm.popMark());
        vm.push(d);
        break;
      }
      case 0x8f:
        vm.push(new PySet([]));
        break; // EMPTY_SET
      case 0x90: {
        // ADDITEMS
        const items = vm.popMark();
        const s = vm.top();
        if (!(s instanceof PySet) || s.frozen) vm.bad('ADDITEMS on a value that is not a set');
        for (const x of items) (s as PySet).items.push(x);
        break;
      }
      case 0x91:
        vm.push(new PySet(vm.popMark(), true));
        break; // FROZENSET
      case 0x61: {
        const v = vm.pop();
        vm.appendItems(vm.top(), [v]);
        break;
      } // APPEND
      case 0x65: {
        const items = vm.popMark();
        vm.appendItems(vm.top(), items);
        break;
      } // APPENDS
      case 0x73: {
        const v = vm.pop();
        const k = vm.pop();
        vm.setItems(vm.top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const kv = vm.popMark();
        vm.setItems(vm.top(), kv);
        break;
      } // SETITEMS
      // ---- memo
      case 0x67:
        vm.push(vm.getMemo(parseIntNumber((arg = input.line()), bad)));
        break; // GET
      case 0x68:
        vm.push(vm.getMemo((arg = input.byte())));
        break; // BINGET
      case 0x6a:
        vm.push(vm.getMemo((arg = input.uint32())));
        break; // LONG_BINGET
      case 0x70:
        memo.set(parseIntNumber((arg = input.line()), bad), vm.top());
        break; // PUT
      case 0x71:
        memo.set((arg = input.byte()), vm.top());
        break; // BINPUT
      case 0x72:
        memo.set((arg = input.uint32()), vm.top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, vm.top());
        break; // MEMOIZE
      // ---- globals and objects
      case 0x63: {
        // GLOBAL
        const module = input.line();
        const nm = input.line();
        arg = [module, nm];
        vm.push(vm.makeGlobal(module, nm));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const nm = vm.pop();
        const module = vm.pop();
        if (typeof module !== 'string' || typeof nm !== 'string') vm.bad('STACK_GLOBAL needs two strings');
        vm.push(vm.makeGlobal(module as string, nm as string));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84: {
        // EXT1/2/4: the copyreg extension registry, empty in practice
        const code = op === 0x82 ? input.byte() : op === 0x83 ? input.uint16() : input.int32();
        arg = code;
        vm.push(new PyObject(new PyGlobal('copyreg', `_extension_registry[${code}]`), [], 'reduce'));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = vm.pop();
        const fn = vm.pop();
        if (!(args instanceof PyTuple)) vm.bad('REDUCE arguments are not a tuple');
        vm.push(vm.call(fn, (args as PyTuple).items, 'reduce'));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = vm.pop();
        const cls = vm.pop();
        if (!(args instanceof PyTuple)) vm.bad('NEWOBJ arguments are not a tuple');
        vm.push(vm.call(cls, (args as PyTuple).items, 'newobj'));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = vm.pop();
        const args = vm.pop();
        const cls = vm.pop();
        if (!(args instanceof PyTuple) || !(kwargs instanceof PyDict)) vm.bad('NEWOBJ_EX needs a tuple and a dict');
        if (cls instanceof PyGlobal) vm.noteGlobal(cls.module, cls.name, true);
        vm.push(new PyObject(cls, (args as PyTuple).items, 'newobj', kwargs as PyDict));
        break;
      }
      case 0x69: {
        // INST: module\nname\n, args from the mark
        const module = input.line();
        const nm = input.line();
        arg = [module, nm];
        const args = vm.popMark();
        vm.push(vm.call(vm.makeGlobal(module, nm), args, 'reduce'));
        break;
      }
      case 0x6f: {
        // OBJ: class and args from the mark
        const items = vm.popMark();
        if (items.length === 0) vm.bad('OBJ without a class');
        vm.push(vm.call(items[0]!, items.slice(1), 'reduce'));
        break;
      }
      case 0x62: {
        // BUILD
        const state = vm.pop();
        const target = vm.top();
        const built = hooks.build?.(target, state);
        if (built === true) break;
        if (built !== undefined) {
          vm.cur[vm.cur.length - 1] = built;
          memo.replace(target, built);
          break;
        }
        if (target instanceof PyObject) target.state = state;
        else if (target instanceof PyDict && state instanceof PyDict) target.attrs = state;
        else if (target instanceof PyDict && state === null) {
          /* nothing to set */
        } else vm.bad(`BUILD on a ${describeKind(target)}`);
        break;
      }
      case 0x50: {
        // PERSID (text)
        const pid = input.line();
        arg = pid;
        vm.push(hooks.persistentLoad ? hooks.persistentLoad(pid) : new PyPersistent(pid));
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = vm.pop();
        vm.push(hooks.persistentLoad ? hooks.persistentLoad(pid) : new PyPersistent(pid));
        break;
      }
      default:
        vm.bad(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
    if (scan?.running) scan.feed(op, at, arg);
  }
}

/**
 * The scan's text of a string argument (`scanText`) without decoding it twice: a strict utf-8
 * decode has no U+FFFD that the bytes did not spell, and then both decodes agree.
 */
function scanTextOf(b: Uint8Array, decoded: string): string {
  if (b.length > MAX_KEPT_STRING) return '';
  return decoded.includes('\uFFFD') ? scanText(b) : decoded;
}

/** Calls of harmless built-ins that the VM evaluates itself (CPython semantics). */
function interpretBuiltinCall(fn: PyValue, args: PyValue[]): PyValue | undefined {
  if (!(fn instanceof PyGlobal)) return undefined;
  switch (fn.fullName) {
    case 'collections.OrderedDict': {
      const d = new PyDict(true);
      const init = args[0];
      if (args.length === 0) return d;
      if (init instanceof PyList || init instanceof PyTuple) {
        // pairs are tuples, or lists in Python 2's OrderedDict.__reduce__
        for (const kv of init.items)
          if ((kv instanceof PyTuple || kv instanceof PyList) && kv.items.length === 2) d.set(kv.items[0]!, kv.items[1]!);
          else return undefined;
        return d;
      }
      return undefined;
    }
    case 'builtins.set':
    case 'builtins.frozenset': {
      const src = args[0];
      const items = src === undefined ? [] : src instanceof PyList || src instanceof PyTuple || src instanceof PySet ? [...src.items] : undefined;
      return items && new PySet(items, fn.name === 'frozenset');
    }
    case 'builtins.bytearray': {
      const a = args[0];
      if (a === undefined) return new PyBytes(new Uint8Array(0), true);
      if (a instanceof PyBytes) return new PyBytes(a.data, true);
      if (typeof a === 'string' && (args[1] === 'latin-1' || args[1] === 'latin1')) return new PyBytes(latin1(a), true);
      return undefined;
    }
    case 'builtins.complex': {
      const re = num(args[0] ?? 0);
      const im = num(args[1] ?? 0);
      return re === undefined || im === undefined ? undefined : new PyComplex(re, im);
    }
    case 'builtins.bytes':
      return args.length === 0 ? new PyBytes(new Uint8Array(0)) : undefined; // protocols 0-2 write b'' as bytes()
    case '_codecs.encode': {
      // Protocol 2 writes Python 3 bytes as `_codecs.encode(str, 'latin1')`.
      const [s, enc] = args;
      if (typeof s === 'string' && (enc === 'latin1' || enc === 'latin-1')) return new PyBytes(latin1(s));
      return undefined;
    }
    case 'copyreg._reconstructor': {
      // Protocols 0/1 pickle plain objects as `_reconstructor(cls, object, None)`.
      const [cls, base, state] = args;
      if (base instanceof PyGlobal && base.fullName === 'builtins.object' && state === null && cls !== undefined) {
        return new PyObject(cls, [], 'newobj');
      }
      return undefined;
    }
  }
  return undefined;
}

function num(v: PyValue): number | undefined {
  if (typeof v === 'number') return v;
  if (v instanceof PyFloat) return v.value;
  return undefined;
}

function describeKind(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v !== 'object') return typeof v;
  return v.constructor.name;
}

/**
 * Two's-complement little-endian integer (LONG1/LONG4), in linear time: one hex conversion, where
 * shifting in one byte at a time is quadratic (a 200 KB LONG4 took 27 s that way).
 */
export function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = BigInt('0x' + Buffer.from(b).reverse().toString('hex'));
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(b.length * 8);
  return normalizeInt(v);
}

export function normalizeInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string, bad: (w: string) => never): number | bigint {
  if (!/^[-+]?\d+$/.test(s.trim())) bad(`bad integer text ${JSON.stringify(s.slice(0, 20))}`);
  return normalizeInt(BigInt(s.trim()));
}

function parseIntNumber(s: string, bad: (w: string) => never): number {
  const v = parseIntText(s, bad);
  if (typeof v !== 'number') bad('memo index too large');
  return v as number;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function py2str(b: Uint8Array): string {
  try {
    return decoder.decode(b);
  } catch {
    return Buffer.from(b).toString('latin1');
  }
}

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function copy(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}

/** The protocol-0 STRING argument: a Python repr of a str, quotes included. */
function parseQuotedString(line: string, bad: (w: string) => never): string {
  const q = line[0];
  if (line.length < 2 || (q !== "'" && q !== '"') || line[line.length - 1] !== q) bad('STRING is not quoted');
  const body = line.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = body[++i];
    switch (n) {
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case '\\':
        out += '\\';
        break;
      case "'":
        out += "'";
        break;
      case '"':
        out += '"';
        break;
      case 'x':
        out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
        i += 2;
        break;
      default:
        if (n !== undefined && /[0-7]/.test(n)) {
          const m = /^[0-7]{1,3}/.exec(body.slice(i))![0];
          out += String.fromCharCode(parseInt(m, 8));
          i += m.length - 1;
        } else out += '\\' + (n ?? '');
    }
  }
  return out;
}

/** protocol-0 UNICODE: raw-unicode-escape (only \uXXXX and \UXXXXXXXX are escapes). */
function rawUnicodeEscape(s: string, bad: (w: string) => never): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string | undefined, b: string | undefined) => {
    const code = parseInt(a ?? b!, 16);
    // CPython's raw_unicode_escape codec: "\\Uxxxxxxxx out of range" past U+10FFFF
    if (code > 0x10ffff) bad(`UNICODE escape \\U${b} is past the last code point U+10FFFF`);
    return String.fromCodePoint(code);
  });
}
