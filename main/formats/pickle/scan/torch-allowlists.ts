/**
 * What torch's weights-only unpickler accepts, name by name and version by version, copied from
 * `torch/_weights_only_unpickler.py` (`_get_allowed_globals`, `_tensor_rebuild_functions`,
 * `Unpickler.load`) of torch 2.13.0 and of torch 1.13 (Debian's). The lists were printed by each
 * torch (`sorted(_get_allowed_globals())`); no prefix wildcards: torch matches the exact
 * `module.name` string in `GLOBAL`.
 */

const STORAGE_AND_TENSOR_CLASSES = ['BFloat16', 'Bool', 'Byte', 'Char', 'Double', 'Float', 'Half', 'Int', 'Long', 'Short'];
const COMPLEX_STORAGES = ['torch.ComplexDoubleStorage', 'torch.ComplexFloatStorage', 'torch.cuda.ComplexDoubleStorage', 'torch.cuda.ComplexFloatStorage'];
const QUANT_STORAGES = ['torch.QInt32Storage', 'torch.QInt8Storage', 'torch.QUInt2x4Storage', 'torch.QUInt4x2Storage', 'torch.QUInt8Storage'];

/** Names both versions allow: `torch._tensor_classes`, `torch._storage_classes`, the old dtypes. */
const COMMON = [
  'collections.OrderedDict',
  'torch.Size',
  'torch.Tensor',
  'torch.nn.parameter.Parameter',
  'torch.serialization._get_layout',
  'torch.storage.TypedStorage',
  'torch.storage.UntypedStorage',
  'torch.complex128',
  'torch.complex32',
  'torch.complex64',
  'torch.float16',
  'torch.float32',
  'torch.float64',
  'torch.int16',
  'torch.int32',
  'torch.int64',
  'torch.int8',
  'torch._utils._rebuild_meta_tensor_no_storage',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_sparse_tensor',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  ...COMPLEX_STORAGES,
  ...QUANT_STORAGES,
  ...STORAGE_AND_TENSOR_CLASSES.flatMap((t) => [`torch.${t}Storage`, `torch.${t}Tensor`, `torch.cuda.${t}Storage`, `torch.cuda.${t}Tensor`]),
  ...STORAGE_AND_TENSOR_CLASSES.filter((t) => t !== 'Bool').flatMap((t) => [`torch.sparse.${t}Tensor`, `torch.cuda.sparse.${t}Tensor`]),
];

/** torch 2.13 `_tensor_rebuild_functions()`: the 12 functions, exactly. */
export const REBUILD_FUNCTIONS_2_13 = [
  '_rebuild_parameter',
  '_rebuild_parameter_with_state',
  '_rebuild_qtensor',
  '_rebuild_tensor',
  '_rebuild_tensor_v2',
  '_rebuild_tensor_v3',
  '_rebuild_sparse_tensor',
  '_rebuild_meta_tensor_no_storage',
  '_rebuild_nested_tensor',
  '_rebuild_wrapper_subclass',
  '_rebuild_device_tensor_from_numpy',
  '_rebuild_device_tensor_from_cpu_tensor',
].map((n) => `torch._utils.${n}`);

const ONLY_2_13 = [
  '_codecs.encode',
  'builtins.bytearray',
  'builtins.complex',
  'builtins.set',
  'collections.Counter',
  'torch.device',
  'torch._tensor._rebuild_from_type_v2',
  ...REBUILD_FUNCTIONS_2_13,
  'torch.bfloat16',
  'torch.bool',
  'torch.bits16',
  'torch.bits1x8',
  'torch.bits2x4',
  'torch.bits4x2',
  'torch.bits8',
  'torch.float4_e2m1fn_x2',
  'torch.float8_e4m3fn',
  'torch.float8_e4m3fnuz',
  'torch.float8_e5m2',
  'torch.float8_e5m2fnuz',
  'torch.float8_e8m0fnu',
  'torch.per_channel_affine',
  'torch.per_channel_affine_float_qparams',
  'torch.per_channel_symmetric',
  'torch.per_tensor_affine',
  'torch.per_tensor_symmetric',
  'torch.qint32',
  'torch.qint8',
  'torch.quint2x4',
  'torch.quint4x2',
  'torch.quint8',
  ...[1, 2, 3, 4, 5, 6, 7].flatMap((b) => [`torch.int${b}`, `torch.uint${b}`]),
  'torch.uint8',
  'torch.uint16',
  'torch.uint32',
  'torch.uint64',
];

/** One torch version's weights-only unpickler, as far as a static reader can check it. */
export interface WeightsOnlyProfile {
  torch: string;
  allowed: ReadonlySet<string>;
  /** opcodes `Unpickler.load` handles; any other raises "Unsupported operand" */
  opcodes: ReadonlySet<number>;
  /** NEWOBJ of any allowed class (2.x) or of `torch.nn.Parameter` only (1.13) */
  newobjAllowedClasses: boolean;
  /** SETITEM(S) checks that the target is a dict, OrderedDict or Counter (2.x, `_check_set_item_target`) */
  checksSetItemTarget: boolean;
  /** modules refused even when a user allowlists them (`_blocklisted_modules`) */
  blocked: ReadonlySet<string>;
  /**
   * BINPERSID ids that are not tuples: 2.x refuses all but ints; 1.13's check reads
   * `type(pid) is not tuple and not type(pid) is not int`, so it refuses ints and lets strings
   * (the old tar format's tensor keys) through
   */
  refusesNonTuplePersistentId: (pid: 'int' | 'other') => boolean;
}

// The opcode bytes both versions' `Unpickler.load` dispatch on.
const OPCODES_1_13 = [
  0x63, 0x81, 0x52, 0x62, 0x61, 0x65, 0x73, 0x75, 0x28, 0x74, 0x85, 0x86, 0x87, 0x4e, 0x89, 0x88, 0x29, 0x5d, 0x7d, 0x8f, 0x4a, 0x4b, 0x4d, 0x58, 0x55, 0x51,
  0x68, 0x6a, 0x71, 0x72, 0x8a, 0x80, 0x2e,
];

export const TORCH_2_13: WeightsOnlyProfile = {
  torch: '2.13',
  allowed: new Set([...COMMON, ...ONLY_2_13]),
  opcodes: new Set([...OPCODES_1_13, 0x47]), // + BINFLOAT
  newobjAllowedClasses: true,
  checksSetItemTarget: true,
  blocked: new Set(['sys', 'os', 'posix', 'nt']),
  refusesNonTuplePersistentId: (pid) => pid !== 'int',
};

export const TORCH_1_13: WeightsOnlyProfile = {
  torch: '1.13',
  allowed: new Set([...COMMON, 'torch._utils._rebuild_sparse_csr_tensor']),
  opcodes: new Set(OPCODES_1_13),
  newobjAllowedClasses: false,
  checksSetItemTarget: false,
  blocked: new Set(),
  refusesNonTuplePersistentId: (pid) => pid === 'int',
};

/** Newest first: the verdict `safe` is the newest profile's. */
export const PROFILES: readonly WeightsOnlyProfile[] = [TORCH_2_13, TORCH_1_13];
