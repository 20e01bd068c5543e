import { CheckpointError } from '../../../errors.ts';
import type { PickleInput } from '../pickle-input.ts';
import { Findings, type Finding } from './findings.ts';
import { classifyCall, type CallVia } from './classify-call.ts';
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

const OPCODE_NAMES: Record<number, string> = {
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

const MAX_DEPTH = 100_000;
const MAX_MEMO = 10_000_000;
/** Strings longer than this are skipped, not kept: no global name or literal worth showing is this long. */
const MAX_KEPT_STRING = 1 << 16;

class Malformed extends Error {}

/**
 * Walks one pickle from `input.pos` to its STOP (CPython's Lib/pickle.py `_Unpickler` is the
 * reference for every opcode), recording each global with what the pickle does with it and what
 * torch's weights-only unpickler would refuse. Stops at the first malformed byte and still
 * returns everything seen before it: a payload can run before a stream breaks.
 */
export function scanPickle(input: PickleInput): PickleScan {
  const start = input.pos;
  const findings = new Findings();
  const checks = PROFILES.map((p) => new WeightsOnlyCheck(p));
  const structure = new StructureCheck();
  const stack: Sym[] = [];
  const marks: number[] = [];
  const memo = new Map<number, Sym>();
  let protocol = 0;
  let opOffset = start;
  const rel = (): number => opOffset - start;

  const bad = (why: string): never => {
    throw new Malformed(why);
  };
  const pop = (): Sym => {
    if (stack.length <= (marks[marks.length - 1] ?? 0)) bad('stack underflow');
    return stack.pop()!;
  };
  const top = (): Sym => {
    if (stack.length <= (marks[marks.length - 1] ?? 0)) bad('stack underflow');
    return stack[stack.length - 1]!;
  };
  const push = (s: Sym): void => {
    if (stack.length >= MAX_DEPTH) bad('stack deeper than any real pickle');
    stack.push(s);
  };
  const popMark = (): Sym[] => {
    const m = marks.pop();
    if (m === undefined) bad('no MARK to pop to');
    return stack.splice(m!);
  };
  const text = (n: number): Sym => {
    if (n > MAX_KEPT_STRING) {
      skip(input, n);
      return { t: 'str', v: '' };
    }
    return { t: 'str', v: Buffer.from(input.bytes(n)).toString('utf8') };
  };
  const bytes = (n: number): Sym => {
    skip(input, n);
    return { t: 'bytes', n };
  };
  const global = (module0: string, name0: string): Sym => {
    const mapped = NAME_MAPPING[`${module0}.${name0}`];
    const module = mapped ? mapped.slice(0, mapped.lastIndexOf('.')) : (IMPORT_MAPPING[module0] ?? module0);
    const name = mapped ? mapped.slice(mapped.lastIndexOf('.') + 1) : name0;
    const full = `${module}.${name}`;
    findings.reference(module, name, rel());
    for (const c of checks) c.global(module, full, rel());
    return { t: 'global', module, name, full };
  };
  const call = (callee: Sym, args: Sym[], via: CallVia): Sym => {
    if (via === 'newobj') for (const c of checks) c.newobj(callee, rel());
    else for (const c of checks) c.reduce(callee, rel());
    return classifyCall(findings, callee, args, via, rel());
  };
  const mutate = (target: Sym, how: string): void => {
    if (target.t === 'global') findings.use(target.full, 'dangerous', `${how} changes ${target.full} itself, a module-level object`, rel());
  };
  const memoPut = (i: number): void => {
    if (memo.size >= MAX_MEMO && !memo.has(i)) bad('memo larger than any real pickle');
    memo.set(i, top());
  };
  const memoGet = (i: number): Sym => {
    const v = memo.get(i);
    if (v === undefined) bad(`memo key ${i} was never stored`);
    structure.memoGet(i, v!);
    return v!;
  };

  let error: string | undefined;
  let value: Sym | undefined;
  try {
    for (;;) {
      opOffset = input.pos;
      const op = input.byte();
      const opName = OPCODE_NAMES[op];
      if (opName === undefined) bad(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      for (const c of checks) c.opcode(op, rel(), opName!);
      structure.opcode(op, rel());
      switch (op) {
        case 0x80:
          protocol = input.byte();
          if (protocol > 5) bad(`unsupported pickle protocol ${protocol}`);
          break;
        case 0x95:
          structure.frame(rel(), Number(Buffer.from(input.bytes(8)).readBigUInt64LE()));
          break;
        case 0x2e:
          value = pop();
          return finish();
        case 0x28:
          marks.push(stack.length);
          break;
        case 0x30:
          if (stack.length === (marks[marks.length - 1] ?? -1)) popMark();
          else pop();
          break;
        case 0x31:
          popMark();
          break;
        case 0x32:
          push(top());
          break;
        case 0x4e:
          push(NONE);
          break;
        case 0x88:
          push({ t: 'bool', v: true });
          break;
        case 0x89:
          push({ t: 'bool', v: false });
          break;
        case 0x4a:
          push({ t: 'int', v: input.int32() });
          break;
        case 0x4b:
          push({ t: 'int', v: input.byte() });
          break;
        case 0x4d:
          push({ t: 'int', v: input.uint16() });
          break;
        case 0x8a:
          push({ t: 'int', v: decodeLong(input.bytes(input.byte())) });
          break;
        case 0x8b: {
          const n = input.int32();
          if (n < 0) bad('negative LONG4 length');
          push(n > 64 ? (skip(input, n), { t: 'int', v: 0 }) : { t: 'int', v: decodeLong(input.bytes(n)) });
          break;
        }
        case 0x47:
          input.bytes(8);
          push({ t: 'float' });
          break;
        case 0x49: {
          const s = input.line().trim();
          push(s === '01' || s === '00' ? { t: 'bool', v: s === '01' } : { t: 'int', v: intText(s, bad) });
          break;
        }
        case 0x4c:
          push({ t: 'int', v: intText(input.line().trim().replace(/L$/, ''), bad) });
          break;
        case 0x46:
          input.line();
          push({ t: 'float' });
          break;
        case 0x58:
          push(text(input.uint32()));
          break;
        case 0x8c:
          push(text(input.byte()));
          break;
        case 0x8d:
          push(text(input.uint64()));
          break;
        case 0x56:
          push({ t: 'str', v: input.line() });
          break;
        case 0x53:
          push({ t: 'str', v: unquote(input.line()) });
          break;
        case 0x54: {
          const n = input.int32();
          if (n < 0) bad('negative BINSTRING length');
          push(text(n));
          break;
        }
        case 0x55:
          push(text(input.byte()));
          break;
        case 0x42:
          push(bytes(input.uint32()));
          break;
        case 0x43:
          push(bytes(input.byte()));
          break;
        case 0x8e:
        case 0x96:
          push(bytes(input.uint64()));
          break;
        case 0x97:
          bad('NEXT_BUFFER needs out-of-band buffers');
          break;
        case 0x98:
          break;
        case 0x29:
          push({ t: 'tuple', items: [] });
          break;
        case 0x74:
          push({ t: 'tuple', items: popMark() });
          break;
        case 0x85:
          push({ t: 'tuple', items: [pop()] });
          break;
        case 0x86: {
          const b = pop();
          const a = pop();
          push({ t: 'tuple', items: [a, b] });
          break;
        }
        case 0x87: {
          const c = pop();
          const b = pop();
          const a = pop();
          push({ t: 'tuple', items: [a, b, c] });
          break;
        }
        case 0x5d:
          push({ t: 'list' });
          break;
        case 0x6c:
          popMark();
          push({ t: 'list' });
          break;
        case 0x7d:
          push({ t: 'dict', type: 'dict' });
          break;
        case 0x64:
          if (popMark().length % 2) bad('DICT with an odd number of items');
          push({ t: 'dict', type: 'dict' });
          break;
        case 0x8f:
          push({ t: 'set', frozen: false });
          break;
        case 0x90: {
          popMark();
          const s = top();
          mutate(s, 'ADDITEMS');
          break;
        }
        case 0x91:
          popMark();
          push({ t: 'set', frozen: true });
          break;
        case 0x61: {
          pop();
          const l = top();
          mutate(l, 'APPEND');
          for (const c of checks) c.append(l, rel());
          break;
        }
        case 0x65: {
          popMark();
          const l = top();
          mutate(l, 'APPENDS');
          for (const c of checks) c.append(l, rel());
          break;
        }
        case 0x73: {
          pop();
          pop();
          const d = top();
          mutate(d, 'SETITEM');
          for (const c of checks) c.setitem(d, rel());
          break;
        }
        case 0x75: {
          if (popMark().length % 2) bad('SETITEMS with an odd number of items');
          const d = top();
          mutate(d, 'SETITEMS');
          for (const c of checks) c.setitem(d, rel());
          break;
        }
        case 0x67:
          push(memoGet(intNumber(input.line(), bad)));
          break;
        case 0x68:
          push(memoGet(input.byte()));
          break;
        case 0x6a:
          push(memoGet(input.uint32()));
          break;
        case 0x70:
          memoPut(intNumber(input.line(), bad));
          break;
        case 0x71:
          memoPut(input.byte());
          break;
        case 0x72:
          memoPut(input.uint32());
          break;
        case 0x94:
          memoPut(memo.size);
          break;
        case 0x63: {
          const m = input.line();
          push(global(m, input.line()));
          break;
        }
        case 0x93: {
          const n = pop();
          const m = pop();
          if (m.t !== 'str' || n.t !== 'str') bad('STACK_GLOBAL needs two strings');
          push(global((m as { v: string }).v, (n as { v: string }).v));
          break;
        }
        case 0x82:
        case 0x83:
        case 0x84: {
          const code = op === 0x82 ? input.byte() : op === 0x83 ? input.uint16() : input.int32();
          findings.use(
            `copyreg._extension_registry.${code}`,
            'dangerous',
            'copyreg extension code: imports whatever the loading process registered under it',
            rel(),
          );
          push({ t: 'obj', type: 'unknown', origin: 'copyreg._extension_registry', offset: rel() });
          break;
        }
        case 0x52: {
          const args = pop();
          const fn = pop();
          if (args.t !== 'tuple') bad('REDUCE arguments are not a tuple');
          push(call(fn, (args as { items: Sym[] }).items, 'reduce'));
          break;
        }
        case 0x81: {
          const args = pop();
          const cls = pop();
          if (args.t !== 'tuple') bad('NEWOBJ arguments are not a tuple');
          push(call(cls, (args as { items: Sym[] }).items, 'newobj'));
          break;
        }
        case 0x92: {
          const kwargs = pop();
          const args = pop();
          const cls = pop();
          if (args.t !== 'tuple' || kwargs.t !== 'dict') bad('NEWOBJ_EX needs a tuple and a dict');
          push(call(cls, (args as { items: Sym[] }).items, 'newobj'));
          break;
        }
        case 0x69: {
          const m = input.line();
          const g = global(m, input.line());
          push(call(g, popMark(), 'inst'));
          break;
        }
        case 0x6f: {
          const items = popMark();
          if (items.length === 0) bad('OBJ without a class');
          push(call(items[0]!, items.slice(1), 'inst'));
          break;
        }
        case 0x62: {
          const state = pop();
          const target = top();
          for (const c of checks) c.build(target, rel());
          if (target.t === 'global') findings.use(target.full, 'dangerous', `BUILD sets attributes on ${target.full} itself, a module-level object`, rel());
          else if (target.t === 'obj' && target.type === 'unknown')
            findings.use(target.origin, 'unknown-class', `${target.origin}'s __setstate__ or __dict__ receives the pickled state`, rel());
          void state;
          break;
        }
        case 0x50: {
          const pid = input.line();
          for (const c of checks) c.persistent({ t: 'str', v: pid }, rel());
          push({ t: 'persistent' });
          break;
        }
        case 0x51: {
          const pid = pop();
          for (const c of checks) c.persistent(pid, rel());
          // torch/serialization.py `_legacy_load.persistent_load`: ('module', cls, file, source) returns cls itself.
          const first = pid.t === 'tuple' ? pid.items[0] : undefined;
          if (pid.t === 'tuple' && first?.t === 'str' && first.v === 'module' && pid.items[1]) push(pid.items[1]);
          else push({ t: 'obj', type: 'torch.storage.TypedStorage', origin: 'persistent_load', offset: rel() });
          break;
        }
      }
    }
  } catch (e) {
    if (!(e instanceof Malformed) && !(e instanceof CheckpointError)) throw e;
    error = `${e instanceof Malformed ? 'malformed' : 'unreadable'} at byte ${opOffset}: ${e.message.replace(/^[^:]*: /, '')}`;
    for (const c of checks) c.broken(`the pickle is cut short or malformed (${error})`);
    return finish();
  }

  function finish(): PickleScan {
    return {
      findings: findings.list(),
      weightsOnly: new Map(checks.map((c) => [c.profile.torch, c.refusal ?? null])),
      unsupported: [...checks[0]!.unsupported].sort(),
      protocol,
      start,
      end: input.pos,
      ...(error !== undefined ? { error } : {}),
      ...(structure.problem !== undefined ? { anomaly: structure.problem } : {}),
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
