/**
 * What a global's name alone says, before looking at how the pickle uses it: a known gadget
 * (the families picklescan, fickling and modelscan deny, and the bypasses reported against
 * them), one of a closed list of harmless numpy and builtin names, or nothing known.
 */

export type NameClass =
  | { kind: 'gadget'; reason: string }
  | { kind: 'benign'; reason: string }
  | { kind: 'harmless-call'; reason: string }
  | { kind: 'unknown' };

/** Whole module families (the module itself or any submodule). */
const GADGET_MODULES: Record<string, string> = {
  os: 'process',
  posix: 'process',
  nt: 'process',
  subprocess: 'process',
  pty: 'process',
  commands: 'process',
  popen2: 'process',
  multiprocessing: 'process',
  _posixsubprocess: 'process',
  signal: 'process',
  _thread: 'process',
  threading: 'process',
  asyncio: 'process',
  sys: 'interpreter',
  runpy: 'import',
  importlib: 'import',
  imp: 'import',
  zipimport: 'import',
  pkgutil: 'import',
  site: 'import',
  code: 'code',
  codeop: 'code',
  marshal: 'code',
  ast: 'code',
  types: 'code',
  inspect: 'code',
  ctypes: 'code',
  _ctypes: 'code',
  cffi: 'code',
  pickle: 'nested pickle',
  _pickle: 'nested pickle',
  cPickle: 'nested pickle',
  dill: 'nested pickle',
  cloudpickle: 'nested pickle',
  joblib: 'nested pickle',
  shelve: 'nested pickle',
  copyreg: 'pickle machinery',
  copy_reg: 'pickle machinery',
  pickletools: 'pickle machinery',
  socket: 'network',
  ssl: 'network',
  http: 'network',
  urllib: 'network',
  urllib2: 'network',
  urllib3: 'network',
  requests: 'network',
  httplib: 'network',
  ftplib: 'network',
  smtplib: 'network',
  telnetlib: 'network',
  poplib: 'network',
  imaplib: 'network',
  nntplib: 'network',
  xmlrpc: 'network',
  socketserver: 'network',
  webbrowser: 'network',
  aiohttp: 'network',
  httpx: 'network',
  paramiko: 'network',
  shutil: 'file-writing',
  tempfile: 'file-writing',
  glob: 'file-writing',
  io: 'file-writing',
  _io: 'file-writing',
  zipfile: 'file-writing',
  tarfile: 'file-writing',
  sqlite3: 'file-writing',
  dbm: 'file-writing',
  mmap: 'file-writing',
  fcntl: 'file-writing',
  fileinput: 'file-writing',
  distutils: 'file-writing',
  setuptools: 'file-writing',
  pip: 'file-writing',
  ensurepip: 'file-writing',
  venv: 'file-writing',
  pdb: 'debugger',
  bdb: 'debugger',
  trace: 'debugger',
  profile: 'profiler',
  cProfile: 'profiler',
  timeit: 'code',
  pydoc: 'pager',
  idlelib: 'debugger',
  doctest: 'code',
  unittest: 'code',
  tkinter: 'code',
  gc: 'interpreter',
  resource: 'interpreter',
  ptrace: 'debugger',
  'numpy.testing': 'code',
  'numpy.f2py': 'code',
  'numpy.distutils': 'code',
  'numpy.lib.npyio': 'nested pickle',
  'numpy.ctypeslib': 'code',
  'pandas.io': 'file-writing',
  'pandas.read_pickle': 'nested pickle',
  keras: 'code',
  tensorflow: 'file-writing',
  tf_keras: 'code',
  'torch.jit': 'torch jit',
  'torch._C._jit': 'torch jit',
  'torch.hub': 'torch hub',
  'torch._dynamo': 'torch compiler',
  'torch._inductor': 'torch compiler',
  'torch.compiler': 'torch compiler',
  'torch.fx': 'torch compiler',
  'torch._export': 'torch compiler',
  'torch.export': 'torch compiler',
  'torch.package': 'torch serialization',
  'torch.utils.cpp_extension': 'torch compiler',
  'torch.ops': 'torch compiler',
  'torch._ops': 'torch compiler',
  'torch.distributed.rpc': 'network',
  'torch.multiprocessing': 'process',
  'torch.utils.bottleneck': 'profiler',
  'torch.utils.collect_env': 'process',
  'logging.handlers': 'file-writing',
  'logging.config': 'code',
  'torch._C._dynamo': 'torch compiler',
  'torch.library': 'torch compiler',
  'torch._library': 'torch compiler',
  'torch._higher_order_ops': 'torch compiler',
  // the config modules of torch._dynamo/_inductor (torch/utils/_config_module.py install_config_module)
  'torch.utils._config_module': 'torch compiler',
};

/** Single names in otherwise harmless modules. */
const GADGET_NAMES: Record<string, string> = {
  'builtins.eval': 'code',
  'builtins.exec': 'code',
  'builtins.execfile': 'code',
  'builtins.compile': 'code',
  'builtins.__import__': 'import',
  'builtins.getattr': 'attribute path',
  'builtins.setattr': 'attribute path',
  'builtins.delattr': 'attribute path',
  'builtins.open': 'file-writing',
  'builtins.globals': 'interpreter',
  'builtins.locals': 'interpreter',
  'builtins.vars': 'interpreter',
  'builtins.input': 'interpreter',
  'builtins.breakpoint': 'debugger',
  'builtins.help': 'pager',
  'builtins.exit': 'interpreter',
  'builtins.quit': 'interpreter',
  'builtins.type': 'code',
  'builtins.super': 'attribute path',
  'builtins.memoryview': 'interpreter',
  'builtins.__dict__': 'interpreter',
  'builtins.__builtins__': 'interpreter',
  'builtins.apply': 'code',
  'builtins.reload': 'import',
  'builtins.file': 'file-writing',
  'builtins.map': 'call chain',
  'builtins.filter': 'call chain',
  'builtins.print': 'interpreter',
  'operator.attrgetter': 'attribute path',
  'operator.methodcaller': 'attribute path',
  'operator.call': 'call chain',
  'operator.itemgetter': 'attribute path',
  'operator.getitem': 'attribute path',
  'operator.setitem': 'attribute path',
  'operator.delitem': 'attribute path',
  'functools.partial': 'call chain',
  'functools.reduce': 'call chain',
  'functools.partialmethod': 'call chain',
  'functools.update_wrapper': 'attribute path',
  'itertools.starmap': 'call chain',
  'collections.defaultdict.__getitem__': 'call chain',
  'torch.load': 'nested pickle',
  'torch.serialization.load': 'nested pickle',
  'torch.serialization._load': 'nested pickle',
  'torch.serialization._legacy_load': 'nested pickle',
  'torch.storage._load_from_bytes': 'nested pickle',
  'torch.save': 'file-writing',
  'torch.serialization.save': 'file-writing',
  'torch._C._jit_load': 'torch jit',
  'torch.classes.load_library': 'code',
  'numpy.load': 'nested pickle',
  'numpy.loads': 'nested pickle',
  'numpy.save': 'file-writing',
  'numpy.savez': 'file-writing',
  'numpy.tofile': 'file-writing',
  'numpy.fromfile': 'file-writing',
  'numpy.memmap': 'file-writing',
  'numpy.core.multiarray.fromfile': 'file-writing',
  'pandas.read_pickle': 'nested pickle',
  'pandas.read_csv': 'file-writing',
  'pandas.eval': 'code',
  'sklearn.externals.joblib.load': 'nested pickle',
  'logging.FileHandler': 'file-writing',
  'logging.basicConfig': 'file-writing',
  'huggingface_hub.hf_hub_download': 'network',
  'transformers.dynamic_module_utils.get_class_from_dynamic_module': 'import',
};

/** Numpy reconstruction (closed list) and builtin types that only hold data; torch's weights-only loader refuses them. */
const BENIGN: Record<string, string> = {
  'numpy.core.multiarray._reconstruct': 'numpy array reconstruction',
  'numpy._core.multiarray._reconstruct': 'numpy array reconstruction',
  'numpy.ndarray': 'numpy array',
  'numpy.dtype': 'numpy dtype',
  'numpy.core.multiarray.scalar': 'numpy scalar',
  'numpy._core.multiarray.scalar': 'numpy scalar',
  'numpy.core.numeric._frombuffer': 'numpy array from bytes',
  'numpy._core.numeric._frombuffer': 'numpy array from bytes',
  'numpy.random._pickle.__randomstate_ctor': 'numpy random state',
  'numpy.random._pickle.__bit_generator_ctor': 'numpy random state',
  'numpy.random._pickle.__generator_ctor': 'numpy random state',
  'numpy.random.mtrand.RandomState': 'numpy random state',
  'numpy.random._mt19937.MT19937': 'numpy random state',
  'numpy.random._pcg64.PCG64': 'numpy random state',
  'numpy.random._philox.Philox': 'numpy random state',
  'numpy.random._generator.Generator': 'numpy random state',
  'builtins.frozenset': 'a builtin data type',
  'builtins.slice': 'a builtin data type',
  'builtins.range': 'a builtin data type',
  'builtins.int': 'a builtin data type',
  'builtins.float': 'a builtin data type',
  'builtins.bool': 'a builtin data type',
  'builtins.str': 'a builtin data type',
  'builtins.tuple': 'a builtin data type',
  'builtins.list': 'a builtin data type',
  'builtins.dict': 'a builtin data type',
  'builtins.bytes': 'a builtin data type',
  'builtins.object': 'a builtin data type',
  'builtins.set': 'a builtin data type',
  'builtins.bytearray': 'a builtin data type',
  'builtins.complex': 'a builtin data type',
  'builtins.NoneType': 'a builtin data type',
  'collections.OrderedDict': 'a builtin data type',
  'collections.Counter': 'a builtin data type',
  'collections.deque': 'a builtin data type',
  'collections.defaultdict': 'a builtin data type',
  'datetime.datetime': 'a date',
  'datetime.date': 'a date',
  'datetime.time': 'a date',
  'datetime.timedelta': 'a date',
  'datetime.timezone': 'a date',
  '_codecs.encode': 'bytes in protocol 2',
  'builtins.Ellipsis': 'a builtin constant',
  'builtins.NotImplemented': 'a builtin constant',
  'types.SimpleNamespace': 'a builtin data type',
  'argparse.Namespace': 'a builtin data type',
  'decimal.Decimal': 'a builtin data type',
  'fractions.Fraction': 'a builtin data type',
  'uuid.UUID': 'a builtin data type',
};

/**
 * Functions (not classes) that whole-model pickles of old torch versions call and that do
 * nothing but return a value: calling them is not running foreign code.
 */
const HARMLESS_CALLS: Record<string, string> = {
  'torch.nn.backends.thnn._get_thnn_function_backend': "returns torch 0.x's THNN backend object (old whole-model pickles)",
  'copyreg._reconstructor': 'plain object construction (protocols 0 and 1)',
  'copyreg.__newobj__': 'plain object construction',
  'copyreg.__newobj_ex__': 'plain object construction',
  'copy_reg._reconstructor': 'plain object construction',
  // torch's own rebuild functions that torch 2.13's weights-only list leaves out (older or device-specific)
  'torch._utils._rebuild_sparse_csr_tensor': 'torch 1.x sparse CSR tensor rebuild',
  'torch._utils._rebuild_xla_tensor': 'XLA tensor rebuild',
  'torch._utils._rebuild_mps_tensor': 'MPS tensor rebuild',
  'torch._tensor._rebuild_from_type': 'torch 1.x tensor subclass rebuild',
  // TorchScript archives' typed containers (torch/jit/_pickle.py): each returns its argument
  ...Object.fromEntries(
    ['build_intlist', 'build_tensorlist', 'build_doublelist', 'build_boollist', 'build_tensor_from_id', 'restore_type_tag'].map((n) => [
      `torch.jit._pickle.${n}`,
      'TorchScript typed container (torch/jit/_pickle.py)',
    ]),
  ),
};

export function classifyName(module: string, name: string): NameClass {
  const full = `${module}.${name}`;
  if (HARMLESS_CALLS[full]) return { kind: 'harmless-call', reason: HARMLESS_CALLS[full] };
  if (GADGET_NAMES[full]) return { kind: 'gadget', reason: `${GADGET_NAMES[full]} gadget` };
  if (BENIGN[full]) return { kind: 'benign', reason: BENIGN[full] };
  const family = moduleFamily(module);
  if (family) return { kind: 'gadget', reason: `module ${module} (${family})` };
  if (module === 'torch.serialization' && name !== '_get_layout') return { kind: 'gadget', reason: 'torch serialization internals' };
  if (module === 'numpy.dtypes' && /^[A-Z][A-Za-z0-9]*DType$/.test(name)) return { kind: 'benign', reason: 'numpy dtype' };
  if (module === 'builtins' && !/^[A-Z]/.test(name)) return { kind: 'gadget', reason: `builtins.${name} is outside the few builtin data types` };
  return { kind: 'unknown' };
}

function moduleFamily(module: string): string | undefined {
  const parts = module.split('.');
  for (let i = parts.length; i > 0; i--) {
    const f = GADGET_MODULES[parts.slice(0, i).join('.')];
    if (f) return f;
  }
  return undefined;
}

/** Lower-case names that are classes: calling them constructs a value (PEP 8 names the rest CapWords). */
const LOWERCASE_CLASSES = new Set([
  'datetime.datetime',
  'datetime.date',
  'datetime.time',
  'datetime.timedelta',
  'datetime.timezone',
  'collections.deque',
  'collections.defaultdict',
  'numpy.dtype',
  'numpy.ndarray',
]);

/** Whether calling the name reads as constructing a class rather than calling a function. */
export function looksLikeClass(module: string, name: string): boolean {
  const last = name.split('.').pop() ?? '';
  return /^_*[A-Z]/.test(last) || LOWERCASE_CLASSES.has(`${module}.${name}`);
}
