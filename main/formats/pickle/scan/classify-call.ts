import { nameClass, type CallText, type Findings } from './findings.ts';
import { looksLikeClass } from './name-classes.ts';
import { callText, type Sym } from './symbols.ts';
import { REBUILD_FUNCTIONS_2_13, TORCH_2_13 } from './torch-allowlists.ts';

/** `reduce`: REDUCE calls `f(*args)`; `newobj`: NEWOBJ(_EX) calls `cls.__new__(cls, *args)`; `inst`: INST/OBJ call the class. */
export type CallVia = 'reduce' | 'newobj' | 'inst';

/** Data types whose `__init__` copyreg._reconstructor may run on a new object (`copyreg._reconstructor(cls, base, state)`). */
const RECONSTRUCTOR_BASES = new Set([
  'builtins.object',
  'builtins.dict',
  'builtins.list',
  'builtins.tuple',
  'builtins.set',
  'builtins.frozenset',
  'builtins.int',
  'builtins.float',
  'builtins.str',
  'builtins.bytes',
  'collections.OrderedDict',
]);

/**
 * Records one call (REDUCE, NEWOBJ, INST, OBJ) and returns the value it would leave on the
 * stack. A call of a global that is not allowlisted is `dangerous` unless it is plain class
 * construction (then `unknown-class`); calling anything that is not a global (a value computed
 * while unpickling, e.g. `getattr(obj, 'system')(…)`) is always `dangerous`.
 */
export function classifyCall(findings: Findings, callee: Sym, args: Sym[], via: CallVia, offset: number): Sym {
  if (callee.t !== 'global') {
    const origin = callee.t === 'obj' ? callee.origin : `(a ${callee.t})`;
    findings.use(origin, 'dangerous', `calls a value computed while unpickling (${origin}(…)(…))`, offset, callText(`${origin}(…)`, args));
    return unknownObject(origin, offset);
  }
  const { full, module, name } = callee;
  findings.called(full);
  const text = (): string => callText(full, args);
  const special = SPECIAL_CALLS[full];
  if (special) return special(findings, callee, args, offset, text);
  const byName = nameClass(module, name);
  if (byName) {
    findings.use(full, byName.cls, byName.reason, offset, text);
    return resultOf(callee, offset);
  }
  if (via === 'newobj' || looksLikeClass(module, name)) {
    findings.use(full, 'unknown-class', `constructs ${full}, which must be importable (its __init__/__new__/__setstate__ run)`, offset, text);
  } else {
    findings.use(full, 'dangerous', `calls function ${full}, which torch.load(weights_only=True) never allows`, offset, text);
  }
  return unknownObject(full, offset);
}

/** What a call of a global leaves on the stack when that depends on the global and `via` alone: `resultOf` or `unknownObject`. */
export type CallOutcome = 'result' | 'unknown';

/**
 * The outcome of calling `callee` when it depends on the callee's name alone (a global that is
 * not one of `SPECIAL_CALLS`, whose outcome depends on the arguments); null otherwise. For such a
 * callee, a second call the same way records nothing new: its finding and its class are the first
 * call's, and only its count grows (`repeatCall`).
 */
export function repeatableOutcome(callee: Sym): CallOutcome | null {
  if (callee.t !== 'global' || SPECIAL_CALLS[callee.full]) return null;
  return nameClass(callee.module, callee.name) ? 'result' : 'unknown';
}

/** A call `classifyCall` has already classified (same global, same way): counted; the value it leaves, at `offset`. */
export function repeatCall(findings: Findings, callee: Sym & { t: 'global' }, outcome: CallOutcome, offset: number): Sym {
  findings.called(callee.full);
  return outcome === 'result' ? resultOf(callee, offset) : unknownObject(callee.full, offset);
}

type SpecialCall = (findings: Findings, callee: Sym & { t: 'global' }, args: Sym[], offset: number, text: CallText) => Sym;

const SPECIAL_CALLS: Record<string, SpecialCall> = {
  /** Protocols before 4 pickle a nested class `A.B` as `getattr(A, 'B')` (pickle.py `save_global`): only that use is harmless. */
  'builtins.getattr': (findings, callee, args, offset, text) => {
    const [target, attr] = args;
    if (args.length === 2 && target?.t === 'global' && attr?.t === 'str' && /^_*[A-Z][A-Za-z0-9_]*$/.test(attr.v) && !/^__/.test(attr.v)) {
      const base = nameClass(target.module, target.name);
      if (base?.cls !== 'dangerous') {
        findings.use(callee.full, 'unknown-class', `reads nested class ${target.full}.${attr.v} (protocol 2 writes A.B as getattr(A, 'B'))`, offset, text);
        const nested = { t: 'global' as const, module: target.module, name: `${target.name}.${attr.v}`, full: `${target.full}.${attr.v}` };
        findings.reference(nested.module, nested.name, offset);
        return nested;
      }
    }
    findings.use(callee.full, 'dangerous', 'getattr reaches an attribute the pickle names, e.g. a module function', offset, text);
    return unknownObject(callee.full, offset);
  },
  /** `_rebuild_from_type_v2(func, new_type, args, state)` calls `func(*args)` (torch/_tensor.py): `func` must itself be allowed. */
  'torch._tensor._rebuild_from_type_v2': (findings, callee, args, offset, text) => {
    const [func, newType, inner] = args;
    const innerArgs = inner?.t === 'tuple' ? inner.items : [];
    if (func?.t !== 'global') {
      findings.use(callee.full, 'dangerous', 'its function argument is not a global, so it calls a value computed while unpickling', offset, text);
    } else if (REBUILD_FUNCTIONS_2_13.includes(func.full)) {
      findings.use(callee.full, 'safe', 'allowed by torch.load(weights_only=True); rebuilds a tensor subclass with an allowed rebuild function', offset, text);
      findings.called(func.full);
    } else {
      classifyCall(findings, func, innerArgs, 'reduce', offset);
      findings.use(
        callee.full,
        TORCH_2_13.allowed.has(func.full) ? 'benign' : 'dangerous',
        `calls ${func.full}, which is not a tensor rebuild function`,
        offset,
        text,
      );
    }
    const type =
      newType?.t === 'global'
        ? newType.full === 'torch.nn.parameter.Parameter'
          ? 'Parameter'
          : newType.full === 'torch.Tensor'
            ? 'Tensor'
            : newType.full
        : 'Tensor';
    return { t: 'obj', type, origin: newType?.t === 'global' ? newType.full : callee.full, offset };
  },
  'copyreg._reconstructor': (findings, callee, args, offset, text) => {
    const [cls, base] = args;
    if (base?.t === 'global' && !RECONSTRUCTOR_BASES.has(base.full)) {
      findings.use(callee.full, 'dangerous', `runs ${base.full}.__init__ on the new object`, offset, text);
    } else findings.use(callee.full, 'benign', 'plain object construction (protocols 0 and 1); torch.load(weights_only=True) refuses it', offset, text);
    return construct(findings, cls, [], offset);
  },
  'copyreg.__newobj__': (findings, callee, args, offset, text) => {
    findings.use(callee.full, 'benign', 'plain object construction; torch.load(weights_only=True) refuses it', offset, text);
    return construct(findings, args[0], args.slice(1), offset);
  },
  'copyreg.__newobj_ex__': (findings, callee, args, offset, text) => {
    findings.use(callee.full, 'benign', 'plain object construction; torch.load(weights_only=True) refuses it', offset, text);
    return construct(findings, args[0], args[1]?.t === 'tuple' ? args[1].items : [], offset);
  },
};

function construct(findings: Findings, cls: Sym | undefined, args: Sym[], offset: number): Sym {
  if (cls === undefined) return unknownObject('copyreg', offset);
  return classifyCall(findings, cls, args, 'newobj', offset);
}

/** What an allowed or benign call leaves on the stack, as far as torch's weights-only checks care. */
function resultOf(callee: Sym & { t: 'global' }, offset: number): Sym {
  const full = callee.full;
  if (full === 'collections.OrderedDict') return { t: 'dict', type: 'OrderedDict' };
  if (full === 'collections.Counter') return { t: 'dict', type: 'Counter' };
  if (full === 'builtins.set') return { t: 'set', frozen: false };
  if (full === '_codecs.encode' || full === 'builtins.bytearray') return { t: 'bytes', n: 0 };
  return { t: 'obj', type: objectType(full), origin: full, offset };
}

/** The last name `objectType` was asked about, and its answer: a state dict calls one rebuild function 100,000 times. */
let lastObjectCallee = '';
let lastObjectType = '';

/** The `type` of the object a call of `full` leaves. */
function objectType(full: string): string {
  if (full !== lastObjectCallee) {
    // two `startsWith` per call were 24 ms of a 100,000-tensor inspect
    lastObjectType =
      full === 'torch.nn.parameter.Parameter' || full.startsWith('torch._utils._rebuild_parameter')
        ? 'Parameter'
        : full === 'torch.Tensor' || full.startsWith('torch._utils._rebuild_')
          ? 'Tensor'
          : TORCH_2_13.allowed.has(full)
            ? full
            : 'known';
    lastObjectCallee = full;
  }
  return lastObjectType;
}

function unknownObject(origin: string, offset: number): Sym {
  return { t: 'obj', type: 'unknown', origin, offset };
}
