import type { SecurityClass, SecurityGlobal, SecurityReport } from '../../shared/inspect.ts';
import { DTYPES } from '../../shared/dtypes.ts';
import type { GlobalRef } from '../formats/values/format-reading.ts';
import { PyGlobal, PyObject, pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { childrenOf } from './tree.ts';
import { DEEPSPEED_CLASSES } from '../formats/deepspeed/known-classes.ts';

/** Classes whose meaning is known (read as data, never imported): named with it in the scan. */
const KNOWN_CLASSES: Readonly<Record<string, string>> = { ...DEEPSPEED_CLASSES };

/**
 * Classifies every global a pickle names. `safe` is what torch's weights-only unpickler allows
 * (torch/_weights_only_unpickler.py, `_get_allowed_globals`, in 1.13 and in 2.x); `benign` is
 * numpy's array and scalar reconstruction; `dangerous` names can run code or touch the system
 * when unpickled; anything else is a class that would have to be imported (`unknown-class`).
 */
const SAFE_EXACT = new Set([
  'collections.OrderedDict', 'collections.Counter', 'torch.nn.parameter.Parameter', 'torch.serialization._get_layout',
  'torch.Size', 'torch.Tensor', 'torch.device', '_codecs.encode', 'builtins.bytearray', 'builtins.set', 'builtins.complex',
  'torch._tensor._rebuild_from_type_v2', 'torch._tensor._rebuild_from_type', 'torch.storage.UntypedStorage', 'torch.storage.TypedStorage',
  'torch.strided', 'torch.sparse_coo', 'torch.sparse_csr', 'torch.sparse_csc', 'torch.sparse_bsr', 'torch.sparse_bsc', 'torch._mkldnn', 'torch.jagged',
  'torch.per_tensor_affine', 'torch.per_channel_affine', 'torch.per_tensor_symmetric', 'torch.per_channel_symmetric', 'torch.per_channel_affine_float_qparams',
  'torch.contiguous_format', 'torch.channels_last', 'torch.channels_last_3d', 'torch.preserve_format',
]);
const TORCH_DTYPE_NAMES = new Set([...DTYPES.map((d) => d.name), 'float', 'double', 'half', 'long', 'int', 'short', 'cfloat', 'cdouble', 'chalf']);

/** Harmless builtins that torch's weights-only loader still refuses. */
const HARMLESS_BUILTINS = new Set([
  'builtins.frozenset', 'builtins.slice', 'builtins.range', 'builtins.int', 'builtins.float', 'builtins.bool', 'builtins.str',
  'builtins.tuple', 'builtins.list', 'builtins.dict', 'builtins.bytes', 'builtins.object', 'copyreg._reconstructor',
]);

const BENIGN = new Set([
  'numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct', 'numpy.ndarray', 'numpy.dtype',
  'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar', 'numpy.core.numeric._frombuffer', 'numpy._core.numeric._frombuffer',
  'numpy.random._pickle.__randomstate_ctor', 'numpy.random._pickle.__bit_generator_ctor', 'numpy.random._pickle.__generator_ctor',
  'numpy.random.mtrand._rand', 'numpy.random._mt19937.MT19937', 'numpy.random._pcg64.PCG64', 'numpy.random.mtrand.RandomState',
]);

const DANGEROUS_MODULES = new Set([
  'os', 'posix', 'nt', 'subprocess', 'sys', 'runpy', 'socket', 'pickle', '_pickle', 'shutil', 'webbrowser', 'importlib',
  'ctypes', 'pty', 'commands', 'code', 'codeop', 'marshal', 'dill', 'cloudpickle', 'platform', 'pdb', 'timeit', 'asyncio',
  'multiprocessing', 'http', 'urllib', 'requests', 'ftplib', 'smtplib', 'telnetlib', 'tempfile', 'glob', 'io',
  '_io', 'builtins.open', 'site', 'distutils', 'setuptools', 'pip', 'zipimport', 'imp',
]);
const DANGEROUS_BUILTINS = new Set([
  'eval', 'exec', 'execfile', 'compile', '__import__', 'getattr', 'setattr', 'delattr', 'open', 'globals', 'locals',
  'vars', 'input', 'breakpoint', 'apply', 'file', 'reload', 'memoryview', 'help', 'exit', 'quit',
]);
const DANGEROUS_EXACT = new Set([
  'torch.load', 'torch.serialization.load', 'torch.serialization._load', 'torch.serialization._legacy_load', 'torch.jit.load',
  'torch.hub.load', 'torch.hub.load_state_dict_from_url', 'torch.storage._load_from_bytes', 'torch._C._jit_load',
  'numpy.load', 'numpy.loads', 'numpy.testing._private.utils.runstring', 'numpy.distutils.exec_command.exec_command',
  'operator.attrgetter', 'operator.methodcaller', 'operator.itemgetter', 'functools.reduce', 'types.FunctionType', 'types.CodeType',
  'torch._dynamo', 'torch.utils.cpp_extension.load', 'torch.utils.cpp_extension.load_inline', 'torch.ops.load_library',
]);

export function classifyGlobal(module: string, name: string): { cls: SecurityClass; reason: string } {
  const full = `${module}.${name}`;
  const top = module.split('.')[0]!;
  if (DANGEROUS_EXACT.has(full)) return { cls: 'dangerous', reason: full.includes('load') ? 'loads another pickle with the full unpickler (nested torch.load / pickle)' : 'can call arbitrary functions or build code' };
  if (module === 'builtins' && DANGEROUS_BUILTINS.has(name)) return { cls: 'dangerous', reason: `builtins.${name} can run or reach arbitrary code` };
  if (DANGEROUS_MODULES.has(top) || DANGEROUS_MODULES.has(module)) return { cls: 'dangerous', reason: `module ${top} can run commands, touch files or the network` };
  if (SAFE_EXACT.has(full)) return { cls: 'safe', reason: 'allowed by torch.load(weights_only=True)' };
  if ((module === 'torch' || module === 'torch.cuda') && (/Storage$/.test(name) || /Tensor$/.test(name) || TORCH_DTYPE_NAMES.has(name))) return { cls: 'safe', reason: 'torch storage, tensor or dtype' };
  if (module === 'torch._utils' && name.startsWith('_rebuild_')) return { cls: 'safe', reason: 'torch tensor rebuild function' };
  if (BENIGN.has(full) || (module === 'numpy.dtypes' && /DType$/.test(name))) return { cls: 'benign', reason: 'numpy array, dtype or scalar reconstruction' };
  if (HARMLESS_BUILTINS.has(full)) return { cls: 'benign', reason: 'a harmless builtin, but torch.load(weights_only=True) refuses it' };
  const known = KNOWN_CLASSES[full];
  if (known) return { cls: 'unknown-class', reason: known };
  return { cls: 'unknown-class', reason: module === '__main__' ? 'class from the training script (__main__); loading it needs that script' : `class ${full} must be importable to load the file` };
}

const ORDER: SecurityClass[] = ['safe', 'benign', 'unknown-class', 'dangerous'];

/** Every distinct object in a tree once, the callables of objects included. */
function eachObject(root: PyValue, visit: (v: object) => void): void {
  const seen = new Set<object>();
  const stack: PyValue[] = [root];
  while (stack.length) {
    const v = stack.pop()!;
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    visit(v);
    for (const [, x] of childrenOf(v)) stack.push(x);
    if (v instanceof PyObject && v.callable instanceof PyObject) stack.push(v.callable);
  }
}

/**
 * The first call of each global with its arguments (so a finding can say what would run), the
 * targets of `functools.partial` (as dangerous as the global it wraps), and whether any getattr
 * does more than read a nested class.
 */
function callSites(root: PyValue): { wrapped: Set<string>; firstCall: Map<string, string>; unsafeGetattr: boolean } {
  let unsafeGetattr = false;
  const wrapped = new Set<string>();
  const firstCall = new Map<string, string>();
  eachObject(root, (v) => {
    if (!(v instanceof PyObject)) return;
    if (!firstCall.has(v.className)) firstCall.set(v.className, `${v.className}(${v.args.map((a) => pyRepr(a)).join(', ')})`.slice(0, 200));
    const target = v.args[0];
    if (v.className === 'functools.partial' && target instanceof PyGlobal) wrapped.add(target.fullName);
    if (v.className === 'builtins.getattr' && !isNestedClassAccess(v)) unsafeGetattr = true;
  });
  return { wrapped, firstCall, unsafeGetattr };
}

export function scanSecurity(globals: GlobalRef[], root: PyValue): SecurityReport {
  const merged = new Map<string, SecurityGlobal>();
  const { wrapped: partials, firstCall, unsafeGetattr } = callSites(root);
  for (const g of globals) {
    const name = `${g.module}.${g.name}`;
    let { cls, reason } = classifyGlobal(g.module, g.name);
    if (name === 'functools.partial') {
      const bad = [...partials].filter((t) => { const i = t.lastIndexOf('.'); return classifyGlobal(t.slice(0, i), t.slice(i + 1)).cls === 'dangerous'; });
      if (bad.length) {
        cls = 'dangerous';
        reason = `wraps ${bad.join(', ')} so that unpickling calls it`;
      }
    }
    if (name === 'builtins.getattr' && !unsafeGetattr) {
      cls = 'unknown-class';
      reason = "only reads nested classes (protocol 2 writes A.B as getattr(A, 'B'))";
    }
    const prev = merged.get(name);
    if (prev) prev.calls += g.calls;
    else {
      const call = cls === 'dangerous' || cls === 'unknown-class' ? firstCall.get(name) : undefined;
      merged.set(name, { name, class: cls, reason, calls: g.calls, ...(call ? { example: call } : {}) });
    }
  }
  const list = [...merged.values()].sort((a, b) => ORDER.indexOf(b.class) - ORDER.indexOf(a.class) || a.name.localeCompare(b.name));
  const verdict = list.reduce<SecurityClass>((w, g) => (ORDER.indexOf(g.class) > ORDER.indexOf(w) ? g.class : w), 'safe');
  return { verdict, globals: list, weightsOnlyLoadable: verdict === 'safe' };
}

/**
 * Calls of dangerous globals anywhere in a tree, as Python-like text. A conversion refuses to
 * write them: the converted file would run them when loaded, as the source would.
 */
export function dangerousCalls(root: PyValue): string[] {
  const found: string[] = [];
  const dangerous = (g: PyGlobal): boolean => classifyGlobal(g.module, g.name).cls === 'dangerous';
  eachObject(root, (v) => {
    if (v instanceof PyObject && v.callable instanceof PyGlobal && dangerous(v.callable) && !isNestedClassAccess(v)) {
      found.push(`${v.callable.fullName}(${v.args.map((a) => pyRepr(a)).join(', ')})`.slice(0, 160));
    }
    if (v instanceof PyGlobal && dangerous(v)) found.push(v.fullName);
  });
  return found;
}

/**
 * Protocols before 4 pickle a nested class `A.B` as `getattr(A, 'B')`. That use of getattr only
 * reads a public class attribute of a named, non-dangerous class.
 */
export function isNestedClassAccess(o: PyObject): boolean {
  if (!(o.callable instanceof PyGlobal) || o.callable.fullName !== 'builtins.getattr') return false;
  const [target, attr] = o.args;
  return target instanceof PyGlobal && classifyGlobal(target.module, target.name).cls !== 'dangerous' && typeof attr === 'string' && /^[A-Za-z][A-Za-z0-9]*$/.test(attr);
}
