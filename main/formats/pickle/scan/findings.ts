import type { SecurityClass } from '../../../../shared/inspect.ts';
import { classifyName } from './name-classes.ts';
import { TORCH_2_13 } from './torch-allowlists.ts';

export const CLASS_ORDER: readonly SecurityClass[] = ['safe', 'benign', 'unknown-class', 'dangerous'];

export function worse(a: SecurityClass, b: SecurityClass): SecurityClass {
  return CLASS_ORDER.indexOf(b) > CLASS_ORDER.indexOf(a) ? b : a;
}

/** One global of one pickle, with the worst thing the pickle does with it. */
export interface Finding {
  name: string;
  class: SecurityClass;
  reason: string;
  /** times the pickle calls it (REDUCE, NEWOBJ, INST, OBJ, or through a wrapper) */
  calls: number;
  /** the call it would make, as Python-like text; never executed */
  call?: string;
  /** byte offset, inside its pickle, of the opcode that decided the class */
  offset: number;
}

/** A call's text, or how to make it: most calls repeat a use already recorded, and their text is never shown. */
export type CallText = string | (() => string);

interface Use {
  cls: SecurityClass;
  reason: string;
  offset: number;
  call?: string;
}

/**
 * Collects what a pickle does with each global. A name's class is the worst of its uses; a name
 * that is only referenced gets the class its name alone deserves.
 */
export class Findings {
  private readonly refs = new Map<string, { module: string; name: string; offset: number; calls: number }>();
  private readonly uses = new Map<string, Use>();

  reference(module: string, name: string, offset: number): void {
    const full = `${module}.${name}`;
    if (!this.refs.has(full)) this.refs.set(full, { module, name, offset, calls: 0 });
  }

  called(full: string): void {
    const r = this.refs.get(full);
    if (r) r.calls++;
  }

  use(full: string, cls: SecurityClass, reason: string, offset: number, callText?: CallText): void {
    const prev = this.uses.get(full);
    if (prev && CLASS_ORDER.indexOf(prev.cls) >= CLASS_ORDER.indexOf(cls)) return;
    const call = typeof callText === 'function' ? callText() : callText;
    this.uses.set(full, { cls, reason, offset, ...(call !== undefined ? { call } : {}) });
    if (!this.refs.has(full)) {
      const i = full.lastIndexOf('.');
      this.refs.set(full, { module: full.slice(0, i), name: full.slice(i + 1), offset, calls: 0 });
    }
  }

  list(): Finding[] {
    return [...this.refs.entries()].map(([full, r]) => {
      const u = this.uses.get(full) ?? referenceOnly(r.module, r.name, r.offset);
      return { name: full, class: u.cls, reason: u.reason, calls: r.calls, offset: u.offset, ...(u.call !== undefined ? { call: u.call } : {}) };
    });
  }
}

/** The class of a name the pickle only imports (never calls, builds or mutates through). */
export function referenceOnly(module: string, name: string, offset: number): Use {
  const full = `${module}.${name}`;
  const base = nameClass(module, name);
  if (base?.cls === 'dangerous')
    return {
      cls: 'dangerous',
      reason: `${base.reason}; referenced, not called: importing it alone runs its module's import-time code, and a reference is the classic way to smuggle a callable into a later call`,
      offset,
    };
  if (base) return { ...base, offset };
  return {
    cls: 'unknown-class',
    reason: module === '__main__' ? 'a class from the training script (__main__); loading needs that script' : `${full} must be importable to load the file`,
    offset,
  };
}

type NameClass = Readonly<{ cls: SecurityClass; reason: string }> | undefined;

/** module → name → class: a 100,000-tensor pickle calls the same two names 200,000 times */
const nameClasses = new Map<string, Map<string, NameClass>>();
let namesCached = 0;
/** A hostile pickle may name millions of globals: past this many, names are classified without the cache. */
const MAX_CACHED_NAMES = 10_000;

/** What the name alone decides, or undefined when only its use can. */
export function nameClass(module: string, name: string): NameClass {
  const byName = nameClasses.get(module);
  if (byName?.has(name)) return byName.get(name);
  const c = classOfName(module, name);
  if (namesCached < MAX_CACHED_NAMES) {
    namesCached++;
    if (byName) byName.set(name, c);
    else nameClasses.set(module, new Map([[name, c]]));
  }
  return c;
}

function classOfName(module: string, name: string): NameClass {
  const full = `${module}.${name}`;
  if (TORCH_2_13.allowed.has(full)) return Object.freeze({ cls: 'safe', reason: 'allowed by torch.load(weights_only=True) (torch 2.13 _get_allowed_globals)' });
  const dotted = dottedPathProblem(name);
  if (dotted) return Object.freeze({ cls: 'dangerous', reason: dotted });
  const c = classifyName(module, name);
  if (c.kind === 'gadget') return Object.freeze({ cls: 'dangerous', reason: c.reason });
  if (c.kind === 'benign' || c.kind === 'harmless-call')
    return Object.freeze({ cls: 'benign', reason: `${c.reason}; torch.load(weights_only=True) refuses it` });
  return undefined;
}

/**
 * Protocol 4 names are qualified names that `find_class` follows attribute by attribute
 * (`_getattribute`). A nested class `Outer.Inner` is ordinary; anything else (a dunder, a
 * function's attribute) reaches objects the module never meant to export.
 */
export function dottedPathProblem(name: string): string | undefined {
  if (!name.includes('.')) return undefined;
  const parts = name.split('.');
  if (parts.every((p) => /^_*[A-Z][A-Za-z0-9_]*$/.test(p) && !/^__.*__$/.test(p))) return undefined;
  return `attribute path through a dotted name (${name})`;
}
