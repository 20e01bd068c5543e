import { copyTree } from '../checkpoint/copy-tree.ts';
import { eachPickledValue } from '../checkpoint/each-pickled-value.ts';
import { nameClass } from '../formats/pickle/scan/findings.ts';
import { numpyScalarValue } from '../formats/numpy/numpy-values.ts';
import { PyDict, PyFloat, PyGlobal, PyObject, type PyValue } from '../formats/values/python-values.ts';
import { builtinGlobalOf } from '../formats/pickle/pickler.ts';
import { normalizeInt } from '../formats/pickle/unpickler.ts';
import { TORCH_2_13 } from '../formats/pickle/scan/torch-allowlists.ts';

/** What making an output tree code-free did, for the conversion report. */
export interface CodeFreeResult {
  tree: PyValue;
  /** values turned into plain data, e.g. `numpy.float64 → float (3×)` */
  converted: string[];
  /** non-allowlisted globals kept because of --keep-objects */
  kept: string[];
  /** every global the output names */
  named: Set<string>;
  /** the first global that blocks the output, with what to do; undefined when none */
  blocked?: string;
}

/**
 * An output tree that torch.load(out, weights_only=True) accepts: it may name only the globals of
 * torch 2.13's allowlist (torch/_weights_only_unpickler.py `_get_allowed_globals`). Content that
 * would need an import becomes plain data where that is exact (numpy scalars → Python numbers,
 * `argparse.Namespace` → its dict); with `keepObjects` every class and callable stays as the
 * source has it (and is listed); dangerous ones never stay. `tensorsOnly` says how the caller's
 * user takes only the tensors instead.
 */
export function makeCodeFree(root: PyValue, keepObjects: boolean, tensorsOnly = 'add --unwrap or --export-state-dict'): CodeFreeResult {
  const converted = new Map<string, number>();
  const kept = new Set<string>();
  let blocked: string | undefined;
  const note = (what: string): void => {
    converted.set(what, (converted.get(what) ?? 0) + 1);
  };
  const refuse = (name: string): void => {
    const cls = nameClass(...split(name))?.cls;
    if (cls === 'dangerous') blocked ??= `the output would carry ${name}, which can run code when the file is loaded; ${tensorsOnly} to keep only the tensors`;
    else if (keepObjects) kept.add(name);
    else
      blocked ??= `the output would carry ${name}, which torch.load(weights_only=True) refuses; add --keep-objects to keep it anyway (the report lists it), or ${tensorsOnly.replace(/^add /, '')} to keep only the tensors`;
  };
  // Every global the writer will name: objects' callables, tensors' rebuild functions and their
  // arguments (a subclass type, hooks), classes stored as values
  const namedIn = (t: PyValue): { named: Set<string>; objects: boolean } => {
    const named = new Set<string>();
    let objects = false;
    eachPickledValue(t, (g) => {
      if (g instanceof PyObject) objects = true;
      else if (g instanceof PyGlobal) named.add(g.fullName);
      else {
        // a set, bytes or complex names a global only in the bytes the writer makes of it
        const written = builtinGlobalOf(g as PyValue);
        if (written) named.add(written.fullName);
      }
    });
    return { named, objects };
  };
  const before = namedIn(root);
  // only objects change: a tree without any (or one whose objects all stay) is written as it is,
  // without a copy (a 100,000-tensor state dict is not copied a second time)
  const changes = before.objects && !keepObjects;
  const tree = !changes
    ? root
    : copyTree(root, {
        object: (o, copy) => {
          const scalar = numpyScalarValue(o);
          if (scalar !== null) {
            note(`numpy scalar → Python ${typeof scalar === 'boolean' ? 'bool' : Number.isInteger(scalar) && !isFloatDescr(o) ? 'int' : 'float'}`);
            if (typeof scalar === 'bigint') return normalizeInt(scalar);
            return typeof scalar === 'number' && isFloatDescr(o) ? new PyFloat(scalar) : scalar;
          }
          if (o.className === 'argparse.Namespace' && o.args.length === 0 && (o.state instanceof PyDict || o.state === undefined)) {
            note('argparse.Namespace → dict');
            const d = new PyDict();
            if (o.state instanceof PyDict) for (const [k, v] of o.state.entries) d.set(copy(k), copy(v));
            return d;
          }
          if (!(o.callable instanceof PyGlobal)) {
            blocked ??= `the output would carry a value computed while unpickling; ${tensorsOnly} to keep only the tensors`;
            return undefined;
          }
          return undefined;
        },
      });
  const { named } = changes ? namedIn(tree) : before;
  for (const g of named) if (!TORCH_2_13.allowed.has(g)) refuse(g);
  return { tree, named, converted: [...converted].map(([k, n]) => `${k}${n > 1 ? ` (${n}×)` : ''}`), kept: [...kept].sort(), ...(blocked ? { blocked } : {}) };
}

function isFloatDescr(o: PyObject): boolean {
  const dt = o.args[0];
  const descr = dt instanceof PyObject && typeof dt.args[0] === 'string' ? dt.args[0] : '';
  return /f\d$/.test(descr);
}

function split(full: string): [string, string] {
  const i = full.lastIndexOf('.');
  return [full.slice(0, i), full.slice(i + 1)];
}
