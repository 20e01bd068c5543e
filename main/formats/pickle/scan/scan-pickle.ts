import { CheckpointError } from '../../../errors.ts';
import type { PickleInput } from '../pickle-input.ts';
import { PickleMemo } from '../memo.ts';
import { memoReads } from '../memo-reads.ts';
import { ItemPut, MAX_KEPT_STRING, scanText, type OpcodeArg, type OpcodeObserver, type TensorItem } from '../opcode-observer.ts';
import { Findings, type Finding } from './findings.ts';
import { classifyCall, repeatableOutcome, repeatCall, type CallOutcome, type CallVia } from './classify-call.ts';
import { NONE, type Sym } from './symbols.ts';
import { StructureCheck } from './structure-check.ts';
import { PROFILES } from './torch-allowlists.ts';
import { WeightsOnlyCheck } from './weights-only-check.ts';

/** What one pickle would do, read without building its data and without running anything. */
export interface PickleScan {
  findings: Finding[];
  /** torch version → the first thing its weights-only unpickler refuses, or null when it loads */
  weightsOnly: Map<string, string | null>;
  /** GLOBAL names torch 2.13's weights-only unpickler does not allow (what `add_safe_globals` needs) */
  unsupported: string[];
  protocol: number;
  /** offsets (file-relative) of the first byte and of the byte after STOP (or where reading stopped) */
  start: number;
  end: number;
  /** set when the pickle is cut short or malformed; the findings are what came before */
  error?: string;
  /** structure pickle.dumps never writes (`StructureCheck`), which parsers read differently */
  anomaly?: string;
  /** the value STOP returned, when it is a literal (legacy magic number, protocol version) */
  value?: Sym;
}

/** torch/_utils.py `IMPORT_MAPPING` and `NAME_MAPPING` (CPython's `_compat_pickle`), used by torch's GLOBAL. */
const IMPORT_MAPPING: Record<string, string> = {
  __builtin__: 'builtins',
  copy_reg: 'copyreg',
  Queue: 'queue',
  repr: 'reprlib',
  _abcoll: 'collections.abc',
  UserDict: 'collections',
  UserList: 'collections',
  UserString: 'collections',
  whichdb: 'dbm',
  StringIO: 'io',
  cStringIO: 'io',
  exceptions: 'builtins',
  cPickle: 'pickle',
};
const NAME_MAPPING: Record<string, string> = {
  '__builtin__.xrange': 'builtins.range',
  '__builtin__.reduce': 'functools.reduce',
  '__builtin__.intern': 'sys.intern',
  '__builtin__.unichr': 'builtins.chr',
  '__builtin__.unicode': 'builtins.str',
  '__builtin__.long': 'builtins.int',
  'itertools.izip': 'builtins.zip',
  'itertools.imap': 'builtins.map',
  'itertools.ifilter': 'builtins.filter',
  'itertools.ifilterfalse': 'itertools.filterfalse',
  'itertools.izip_longest': 'itertools.zip_longest',
  'UserDict.IterableUserDict': 'collections.UserDict',
  'UserList.UserList': 'collections.UserList',
  'UserString.UserString': 'collections.UserString',
  '__builtin__.basestring': 'builtins.str',
  'exceptions.StandardError': 'builtins.Exception',
  'UserDict.UserDict': 'collections.UserDict',
};

/** Every pickle opcode's name (CPython Lib/pickletools.py); a byte not in it is no opcode. */
export const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x5d: 'EMPTY_LIST',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x75: 'SETITEMS',
  0x7d: 'EMPTY_DICT',
  0x29: 'EMPTY_TUPLE',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x47: 'BINFLOAT',
};

/** An opcode's argument as the scan keeps it (`OpcodeArg`). */
export type ScanOperand = OpcodeArg;

const MAX_DEPTH = 100_000;
/** How many recent calls `PickleScanner.call` remembers: a state dict alternates two. */
const RECENT_CALLS = 4;
const MAX_MEMO = 10_000_000;

class Malformed extends Error {}

/** A call `PickleScanner.call` classified, whose repeats it only counts. */
interface RecentCall {
  callee: Sym;
  via: CallVia;
  outcome: CallOutcome;
}

// Syms are never changed once made, so the common literals are shared (400,000 BININT1 in a
// 100,000-tensor pickle).
const TRUE: Sym = Object.freeze({ t: 'bool', v: true });
const FALSE: Sym = Object.freeze({ t: 'bool', v: false });
const SMALL_INTS: readonly Sym[] = Array.from({ length: 256 }, (_, v) => Object.freeze({ t: 'int' as const, v }));

/**
 * Walks one pickle from `input.pos` to its STOP (CPython's Lib/pickle.py `_Unpickler` is the
 * reference for every opcode), recording each global with what the pickle does with it and what
 * torch's weights-only unpickler would refuse. Stops at the first malformed byte and still
 * returns everything seen before it: a payload can run before a stream breaks.
 */
export function scanPickle(input: PickleInput): PickleScan {
  const scanner = new PickleScanner(input.pos);
  const reads = memoReads(input.fork());
  if (reads) scanner.memoReadsAre(reads);
  let at = input.pos;
  try {
    for (;;) {
      at = input.pos;
      const op = input.byte();
      scanner.opcode(op, at);
      if (scanner.apply(op, readOperand(op, input))) break;
    }
  } catch (e) {
    if (!(e instanceof Malformed) && !(e instanceof CheckpointError)) throw e;
    scanner.broken(e, at);
  }
  return scanner.finish(input.pos);
}

/** Reads the argument of `op` the way the scan keeps it (see `ScanOperand`). */
function readOperand(op: number, input: PickleInput): ScanOperand {
  switch (op) {
    case 0x80:
    case 0x4b:
    case 0x68:
    case 0x71:
    case 0x82:
      return input.byte();
    case 0x4d:
    case 0x83:
      return input.uint16();
    case 0x4a:
    case 0x84:
      return input.int32();
    case 0x6a:
    case 0x72:
      return input.uint32();
    case 0x43:
      return skipBytes(input, input.byte());
    case 0x42:
      return skipBytes(input, input.uint32());
    case 0x8e:
    case 0x96:
      return skipBytes(input, input.uint64());
    case 0x95: // FRAME: its length, for the structure check (a frame that splits an opcode)
      return input.frameLength();
    case 0x47:
      input.bytes(8);
      return undefined;
    case 0x8a:
      return decodeLong(input.bytes(input.byte()));
    case 0x8b: {
      const n = input.int32();
      if (n < 0) throw new Malformed('negative LONG4 length');
      return n > 64 ? (skip(input, n), 0) : decodeLong(input.bytes(n));
    }
    case 0x49:
    case 0x4c:
    case 0x46:
    case 0x56:
    case 0x53:
    case 0x67:
    case 0x70:
    case 0x50:
      return input.line();
    case 0x58:
      return text(input, input.uint32());
    case 0x8c:
    case 0x55:
      return text(input, input.byte());
    case 0x8d:
      return text(input, input.uint64());
    case 0x54: {
      const n = input.int32();
      if (n < 0) throw new Malformed('negative BINSTRING length');
      return text(input, n);
    }
    case 0x63:
    case 0x69: {
      const m = input.line();
      return [m, input.line()];
    }
    default:
      return undefined;
  }
}

function text(input: PickleInput, n: number): string {
  if (n > MAX_KEPT_STRING) {
    skip(input, n);
    return '';
  }
  return input.asciiText(n) ?? scanText(input.bytes(n));
}

function skipBytes(input: PickleInput, n: number): number {
  skip(input, n);
  return n;
}

/**
 * The scanning VM: a stack of `Sym`s, fed one opcode at a time (`opcode`, then `apply` with its
 * argument). `scanPickle` drives it over bytes of its own; the unpickler drives it while it reads
 * a pickle for its values, so inspect and read-back get the value and the verdict from one walk.
 */
export class PickleScanner implements OpcodeObserver {
  private readonly findings = new Findings();
  private readonly checks = PROFILES.map((p) => new WeightsOnlyCheck(p));
  private readonly stack: Sym[] = [];
  private readonly marks: number[] = [];
  private memo = new PickleMemo<Sym>();
  private readonly structure = new StructureCheck();
  /** `seenOps[op]` is 1 once opcode `op` has been checked (`opcode`) */
  private readonly seenOps = new Uint8Array(256);
  private protocol = 0;
  private opOffset: number;
  private error: string | undefined;
  private value: Sym | undefined;
  /** false once STOP or a malformed opcode ended the walk: later opcodes are not this pickle's */
  private open = true;
  /** the last calls classified whose repeats need only be counted (`repeatableOutcome`) */
  private readonly recentCalls: RecentCall[] = [];
  private recentNext = 0;

  constructor(private readonly start: number) {
    this.opOffset = start;
  }

  /** See `OpcodeObserver.memoReadsAre`: the other indices' values are not kept. */
  memoReadsAre(indices: ReadonlySet<number>): void {
    if (this.memo.size === 0) this.memo = new PickleMemo<Sym>(indices);
  }

  /** True while the scan takes opcodes (before STOP, and before anything malformed). */
  get running(): boolean {
    return this.open;
  }

  /** True when the scan stopped at a malformed or cut-short opcode (its findings are what came before). */
  get failed(): boolean {
    return this.error !== undefined;
  }

  private rel(): number {
    return this.opOffset - this.start;
  }

  /** The opcode `op` at file offset `at` starts; its argument comes to `apply`. */
  opcode(op: number, at: number): void {
    this.opOffset = at;
    if (this.seenOps[op] === 0) {
      // an opcode is known, and allowed by each weights-only profile, or not, at its first use:
      // a refusal keeps the first offset, so its later uses (3 million in a 100k-tensor pickle) change nothing
      const opName = OPCODE_NAMES[op];
      if (opName === undefined) throw new Malformed(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      for (const c of this.checks) c.opcode(op, this.rel(), opName);
      this.seenOps[op] = 1;
    }
    this.structure.opcode(op, this.rel());
  }

  /** `opcode` then `apply`, for a driver that reports malformed input itself: the scan records it and stops. */
  feed(op: number, at: number, arg: ScanOperand): void {
    if (!this.open) return;
    try {
      this.opcode(op, at);
      if (this.apply(op, arg)) this.open = false;
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      this.broken(e, at);
    }
  }

  /**
   * See `OpcodeObserver.skipTensorItem`. Feeding the item's opcodes would: check each opcode (done
   * at its first use, so required already seen); push and pop values whose only lasting effects are
   * the two calls, each a repeat that `call` only counts (required: the rebuild function and
   * `OrderedDict` come from the memo and were called the same way before); a persistent id whose
   * first item is `'storage'`, which no weights-only profile refuses; tuples of at most a few dozen
   * items, which the expansion check cannot flag; memo entries; and the key and the tensor left on
   * the stack. A tuple stored at a memo index read back later is not made here: that item is fed.
   */
  skipTensorItem(item: TensorItem): boolean {
    if (!this.open) return true; // feeding would change nothing either
    const { memo, stack } = this;
    if (stack.length + 32 >= MAX_DEPTH || memo.size + item.putCount >= MAX_MEMO) return false;
    for (let i = 0; i < item.opCount; i++) if (this.seenOps[item.ops[i]!] === 0) return false;
    let hooksKept = false;
    for (let i = 0; i < item.putCount; i++) {
      if (!memo.keeps(item.puts[i]!)) continue;
      if (item.putWhat[i] === ItemPut.Tuple) return false;
      if (item.putWhat[i] === ItemPut.Hooks) hooksKept = true;
    }
    let value: Sym | undefined;
    let rebuild: RecentCall | undefined;
    let hooks: RecentCall | undefined;
    if (item.valueGet >= 0) {
      value = memo.get(item.valueGet);
      if (value === undefined) return false;
    } else {
      rebuild = this.repeatOf(item.rebuildGet);
      hooks = this.repeatOf(item.hooksGet);
      const tag = item.storageTagGet >= 0 ? memo.get(item.storageTagGet) : undefined;
      if (!rebuild || !hooks || (item.storageTagGet >= 0 && !(tag?.t === 'str' && tag.v === 'storage'))) return false;
    }
    if (!this.structure.skipped(item.last)) return false;
    this.opOffset = item.last;
    const key: Sym = { t: 'str', v: item.key };
    let hooksDict: Sym = NONE;
    if (rebuild && hooks) {
      // the hooks' OrderedDict is made only when a PUT of it is read back later (else only counted)
      const hooksCallee = hooks.callee as Sym & { t: 'global' };
      if (hooksKept) hooksDict = repeatCall(this.findings, hooksCallee, hooks.outcome, item.hooksAt - this.start);
      else this.findings.called(hooksCallee.full);
      value = repeatCall(this.findings, rebuild.callee as Sym & { t: 'global' }, rebuild.outcome, item.rebuildAt - this.start);
    }
    for (let i = 0; i < item.putCount; i++) {
      const at = item.puts[i]!;
      memo.set(at, memo.keeps(at) ? this.itemValue(item, item.putWhat[i]!, key, hooksDict, value!) : NONE); // NONE: only counted
    }
    this.push(key);
    this.push(value!);
    return true;
  }

  /** A value of a skipped item, for a memo index read back later. */
  private itemValue(item: TensorItem, what: ItemPut, key: Sym, hooksDict: Sym, tensor: Sym): Sym {
    switch (what) {
      case ItemPut.Key:
        return key;
      case ItemPut.StorageTag:
        return { t: 'str', v: 'storage' };
      case ItemPut.StorageKey:
        return { t: 'str', v: item.storageKey };
      case ItemPut.Location:
        return { t: 'str', v: item.location };
      case ItemPut.Hooks:
        return hooksDict;
      default:
        return tensor;
    }
  }

  /** The call a BINGET of memo index `i` then REDUCE would repeat, when `call` would only count it. */
  private repeatOf(i: number): RecentCall | undefined {
    const callee = this.memo.get(i);
    if (callee === undefined) return undefined;
    for (const r of this.recentCalls) if (r.callee === callee && r.via === 'reduce') return r;
    return undefined;
  }

  /** The pickle is malformed or cut short here: torch raises too; the findings are what came before. */
  broken(e: Error, at: number): void {
    this.opOffset = at;
    this.open = false;
    this.error = `${e instanceof Malformed ? 'malformed' : 'unreadable'} at byte ${this.opOffset}: ${e.message.replace(/^[^:]*: /, '')}`;
    for (const c of this.checks) c.broken(`the pickle is cut short or malformed (${this.error})`);
  }

  private readonly bad = (why: string): never => {
    throw new Malformed(why);
  };
  private pop(): Sym {
    const { stack, marks } = this;
    if (stack.length <= (marks[marks.length - 1] ?? 0)) this.bad('stack underflow');
    return stack.pop()!;
  }
  private top(): Sym {
    const { stack, marks } = this;
    if (stack.length <= (marks[marks.length - 1] ?? 0)) this.bad('stack underflow');
    return stack[stack.length - 1]!;
  }
  private push(s: Sym): void {
    if (this.stack.length >= MAX_DEPTH) this.bad('stack deeper than any real pickle');
    this.stack.push(s);
  }
  private popMark(): Sym[] {
    const m = this.marks.pop();
    if (m === undefined) this.bad('no MARK to pop to');
    return this.stack.splice(m!);
  }
  private global(module0: string, name0: string): Sym {
    const mapped = NAME_MAPPING[`${module0}.${name0}`];
    const module = mapped ? mapped.slice(0, mapped.lastIndexOf('.')) : (IMPORT_MAPPING[module0] ?? module0);
    const name = mapped ? mapped.slice(mapped.lastIndexOf('.') + 1) : name0;
    const full = `${module}.${name}`;
    this.findings.reference(module, name, this.rel());
    for (const c of this.checks) c.global(module, full, this.rel());
    return { t: 'global', module, name, full };
  }
  private call(callee: Sym, args: Sym[], via: CallVia): Sym {
    const rel = this.rel();
    // a 100,000-tensor pickle calls the same two globals (one memoized object each) 200,000 times
    const recent = this.recentCalls;
    for (let i = 0; i < recent.length; i++) {
      const r = recent[i]!;
      if (r.callee === callee && r.via === via) return repeatCall(this.findings, callee as Sym & { t: 'global' }, r.outcome, rel);
    }
    if (via === 'newobj') for (const c of this.checks) c.newobj(callee, rel);
    else for (const c of this.checks) c.reduce(callee, rel);
    const value = classifyCall(this.findings, callee, args, via, rel);
    // the weights-only checks and the findings now hold all a repeat of this call would add but its count
    const outcome = repeatableOutcome(callee);
    if (outcome !== null) recent[this.recentNext++ % RECENT_CALLS] = { callee, via, outcome };
    return value;
  }
  private mutate(target: Sym, how: string): void {
    if (target.t === 'global') this.findings.use(target.full, 'dangerous', `${how} changes ${target.full} itself, a module-level object`, this.rel());
  }
  private memoPut(i: number): void {
    const { memo } = this;
    if (memo.size >= MAX_MEMO && !memo.has(i)) this.bad('memo larger than any real pickle');
    memo.set(i, this.top());
  }
  /**
   * Pushes a container or tuple built from `items` (a tuple's own items by default), sized for the
   * expansion check. Tuples are made with `expanded: 1` (what its absence means) so that the
   * check's write finds the field in place: adding it gave 400,000 tuples of a 100,000-tensor
   * pickle a second allocation each.
   */
  private pushBuilt(value: Sym, items: readonly Sym[] = value.t === 'tuple' ? value.items : []): void {
    this.structure.holds(value, items, this.rel());
    this.push(value);
  }

  private memoGet(i: number): Sym {
    const v = this.memo.get(i);
    if (v === undefined) this.bad(`memo key ${i} was never stored`);
    return v!;
  }

  /** Applies `op` with its argument; true at STOP. */
  apply(op: number, arg: ScanOperand): boolean {
    const { stack, marks, checks, findings } = this;
    const num = arg as number;
    const str = arg as string;
    const rel = this.rel();
    switch (op) {
      case 0x80:
        this.protocol = num;
        if (num > 5) this.bad(`unsupported pickle protocol ${num}`);
        break;
      case 0x95:
        this.structure.frame(rel, num);
        break;
      case 0x2e:
        this.value = this.pop();
        this.open = false;
        return true;
      case 0x28:
        marks.push(stack.length);
        break;
      case 0x30:
        if (stack.length === (marks[marks.length - 1] ?? -1)) this.popMark();
        else this.pop();
        break;
      case 0x31:
        this.popMark();
        break;
      case 0x32:
        this.push(this.top());
        break;
      case 0x4e:
        this.push(NONE);
        break;
      case 0x88:
        this.push(TRUE);
        break;
      case 0x89:
        this.push(FALSE);
        break;
      case 0x4a:
      case 0x4b:
      case 0x4d:
      case 0x8a:
      case 0x8b:
        this.push(typeof arg === 'number' && arg >= 0 && arg < SMALL_INTS.length ? SMALL_INTS[arg]! : { t: 'int', v: arg as number | bigint });
        break;
      case 0x47:
        this.push({ t: 'float' });
        break;
      case 0x49: {
        const s = str.trim();
        this.push(s === '01' || s === '00' ? { t: 'bool', v: s === '01' } : { t: 'int', v: intText(s, this.bad) });
        break;
      }
      case 0x4c:
        this.push({ t: 'int', v: intText(str.trim().replace(/L$/, ''), this.bad) });
        break;
      case 0x46:
        this.push({ t: 'float' });
        break;
      case 0x58:
      case 0x8c:
      case 0x8d:
      case 0x56:
      case 0x54:
      case 0x55:
        this.push({ t: 'str', v: str });
        break;
      case 0x53:
        this.push({ t: 'str', v: unquote(str) });
        break;
      case 0x42:
      case 0x43:
      case 0x8e:
      case 0x96:
        this.push({ t: 'bytes', n: num });
        break;
      case 0x97:
        this.bad('NEXT_BUFFER needs out-of-band buffers');
        break;
      case 0x98:
        break;
      case 0x29:
        this.push({ t: 'tuple', items: [] });
        break;
      case 0x74:
        this.pushBuilt({ t: 'tuple', items: this.popMark(), expanded: 1 });
        break;
      case 0x85:
        this.pushBuilt({ t: 'tuple', items: [this.pop()], expanded: 1 });
        break;
      case 0x86: {
        const b = this.pop();
        const a = this.pop();
        this.pushBuilt({ t: 'tuple', items: [a, b], expanded: 1 });
        break;
      }
      case 0x87: {
        const c = this.pop();
        const b = this.pop();
        const a = this.pop();
        this.pushBuilt({ t: 'tuple', items: [a, b, c], expanded: 1 });
        break;
      }
      case 0x5d:
        this.push({ t: 'list' });
        break;
      case 0x6c:
        this.pushBuilt({ t: 'list' }, this.popMark());
        break;
      case 0x7d:
        this.push({ t: 'dict', type: 'dict' });
        break;
      case 0x64: {
        const kv = this.popMark();
        if (kv.length % 2) this.bad('DICT with an odd number of items');
        this.pushBuilt({ t: 'dict', type: 'dict' }, kv);
        break;
      }
      case 0x8f:
        this.push({ t: 'set', frozen: false });
        break;
      case 0x90: {
        const items = this.popMark();
        this.mutate(this.top(), 'ADDITEMS');
        this.structure.holds(this.top(), items, rel);
        break;
      }
      case 0x91:
        this.pushBuilt({ t: 'set', frozen: true }, this.popMark());
        break;
      case 0x61: {
        const x = this.pop();
        const l = this.top();
        this.structure.holds(l, [x], rel);
        this.mutate(l, 'APPEND');
        for (const c of checks) c.append(l, rel);
        break;
      }
      case 0x65: {
        const items = this.popMark();
        const l = this.top();
        this.structure.holds(l, items, rel);
        this.mutate(l, 'APPENDS');
        for (const c of checks) c.append(l, rel);
        break;
      }
      case 0x73: {
        const v = this.pop();
        const k = this.pop();
        const d = this.top();
        this.structure.holds(d, [k, v], rel);
        this.mutate(d, 'SETITEM');
        for (const c of checks) c.setitem(d, rel);
        break;
      }
      case 0x75: {
        const kv = this.popMark();
        if (kv.length % 2) this.bad('SETITEMS with an odd number of items');
        const d = this.top();
        this.structure.holds(d, kv, rel);
        this.mutate(d, 'SETITEMS');
        for (const c of checks) c.setitem(d, rel);
        break;
      }
      case 0x67:
        this.push(this.memoGet(intNumber(str, this.bad)));
        break;
      case 0x68:
      case 0x6a:
        this.push(this.memoGet(num));
        break;
      case 0x70:
        this.memoPut(intNumber(str, this.bad));
        break;
      case 0x71:
      case 0x72:
        this.memoPut(num);
        break;
      case 0x94:
        this.memoPut(this.memo.size);
        break;
      case 0x63: {
        const [m, n] = arg as readonly [string, string];
        this.push(this.global(m, n));
        break;
      }
      case 0x93: {
        const n = this.pop();
        const m = this.pop();
        if (m.t !== 'str' || n.t !== 'str') this.bad('STACK_GLOBAL needs two strings');
        this.push(this.global((m as { v: string }).v, (n as { v: string }).v));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        findings.use(
          `copyreg._extension_registry.${num}`,
          'dangerous',
          'copyreg extension code: imports whatever the loading process registered under it',
          rel,
        );
        this.push({ t: 'obj', type: 'unknown', origin: 'copyreg._extension_registry', offset: rel });
        break;
      case 0x52: {
        const args = this.pop();
        const fn = this.pop();
        if (args.t !== 'tuple') this.bad('REDUCE arguments are not a tuple');
        this.push(this.call(fn, (args as { items: Sym[] }).items, 'reduce'));
        break;
      }
      case 0x81: {
        const args = this.pop();
        const cls = this.pop();
        if (args.t !== 'tuple') this.bad('NEWOBJ arguments are not a tuple');
        this.push(this.call(cls, (args as { items: Sym[] }).items, 'newobj'));
        break;
      }
      case 0x92: {
        const kwargs = this.pop();
        const args = this.pop();
        const cls = this.pop();
        if (args.t !== 'tuple' || kwargs.t !== 'dict') this.bad('NEWOBJ_EX needs a tuple and a dict');
        this.push(this.call(cls, (args as { items: Sym[] }).items, 'newobj'));
        break;
      }
      case 0x69: {
        const [m, n] = arg as readonly [string, string];
        const g = this.global(m, n);
        this.push(this.call(g, this.popMark(), 'inst'));
        break;
      }
      case 0x6f: {
        const items = this.popMark();
        if (items.length === 0) this.bad('OBJ without a class');
        this.push(this.call(items[0]!, items.slice(1), 'inst'));
        break;
      }
      case 0x62: {
        this.pop();
        const target = this.top();
        for (const c of checks) c.build(target, rel);
        if (target.t === 'global') findings.use(target.full, 'dangerous', `BUILD sets attributes on ${target.full} itself, a module-level object`, rel);
        else if (target.t === 'obj' && target.type === 'unknown')
          findings.use(target.origin, 'unknown-class', `${target.origin}'s __setstate__ or __dict__ receives the pickled state`, rel);
        break;
      }
      case 0x50:
        for (const c of checks) c.persistent({ t: 'str', v: str }, rel);
        this.push({ t: 'persistent' });
        break;
      case 0x51: {
        const pid = this.pop();
        for (const c of checks) c.persistent(pid, rel);
        // torch/serialization.py `_legacy_load.persistent_load`: ('module', cls, file, source) returns cls itself.
        const first = pid.t === 'tuple' ? pid.items[0] : undefined;
        if (pid.t === 'tuple' && first?.t === 'str' && first.v === 'module' && pid.items[1]) this.push(pid.items[1]);
        else this.push({ t: 'obj', type: 'torch.storage.TypedStorage', origin: 'persistent_load', offset: rel });
        break;
      }
    }
    return false;
  }

  /** What the pickle does; `end` is the file offset after STOP, or where reading stopped. */
  finish(end: number): PickleScan {
    const { checks, error, value } = this;
    return {
      findings: this.findings.list(),
      weightsOnly: new Map(checks.map((c) => [c.profile.torch, c.refusal ?? null])),
      unsupported: [...checks[0]!.unsupported].sort(),
      protocol: this.protocol,
      start: this.start,
      end,
      ...(error !== undefined ? { error } : {}),
      ...(this.structure.problem !== undefined ? { anomaly: this.structure.problem } : {}),
      ...(value !== undefined ? { value } : {}),
    };
  }
}

function skip(input: PickleInput, n: number): void {
  if (n < 0 || input.pos + n > input.end)
    input.bytes(n); // raises the input's own "ends early" error
  else input.pos += n;
}

function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(b.length * 8);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function intText(s: string, bad: (w: string) => never): number | bigint {
  if (!/^[-+]?\d+$/.test(s)) bad(`bad integer text ${JSON.stringify(s.slice(0, 20))}`);
  const v = BigInt(s);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function intNumber(s: string, bad: (w: string) => never): number {
  const v = intText(s.trim(), bad);
  if (typeof v !== 'number' || v < 0) bad('bad memo index');
  return v as number;
}

/** Protocol 0's STRING argument is a quoted repr; the scanner only needs its text roughly. */
function unquote(line: string): string {
  const q = line[0];
  return (q === "'" || q === '"') && line.endsWith(q) && line.length >= 2 ? line.slice(1, -1) : line;
}
