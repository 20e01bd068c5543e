/**
 * torch dtypes by their torch names, with element sizes and the legacy storage class names.
 * Source: torch/_utils.py `_element_size`, torch/storage.py `_dtype_to_storage_type_map`.
 */
export interface DTypeInfo {
  name: string;
  /** bytes per element; sub-byte packed types count the packed byte */
  size: number;
  /** the `torch.<X>Storage` class name torch uses for this dtype, if it has one */
  storage?: string;
  kind: 'float' | 'int' | 'uint' | 'bool' | 'complex' | 'quantized' | 'float8' | 'bits';
  /** the safetensors dtype tag, if safetensors can hold it */
  safetensors?: string;
}

export const DTYPES: readonly DTypeInfo[] = [
  { name: 'float64', size: 8, storage: 'DoubleStorage', kind: 'float', safetensors: 'F64' },
  { name: 'float32', size: 4, storage: 'FloatStorage', kind: 'float', safetensors: 'F32' },
  { name: 'float16', size: 2, storage: 'HalfStorage', kind: 'float', safetensors: 'F16' },
  { name: 'bfloat16', size: 2, storage: 'BFloat16Storage', kind: 'float', safetensors: 'BF16' },
  { name: 'int64', size: 8, storage: 'LongStorage', kind: 'int', safetensors: 'I64' },
  { name: 'int32', size: 4, storage: 'IntStorage', kind: 'int', safetensors: 'I32' },
  { name: 'int16', size: 2, storage: 'ShortStorage', kind: 'int', safetensors: 'I16' },
  { name: 'int8', size: 1, storage: 'CharStorage', kind: 'int', safetensors: 'I8' },
  { name: 'uint8', size: 1, storage: 'ByteStorage', kind: 'uint', safetensors: 'U8' },
  { name: 'uint16', size: 2, kind: 'uint', safetensors: 'U16' },
  { name: 'uint32', size: 4, kind: 'uint', safetensors: 'U32' },
  { name: 'uint64', size: 8, kind: 'uint', safetensors: 'U64' },
  { name: 'bool', size: 1, storage: 'BoolStorage', kind: 'bool', safetensors: 'BOOL' },
  { name: 'complex32', size: 4, storage: 'ComplexHalfStorage', kind: 'complex' },
  { name: 'complex64', size: 8, storage: 'ComplexFloatStorage', kind: 'complex', safetensors: 'C64' },
  { name: 'complex128', size: 16, storage: 'ComplexDoubleStorage', kind: 'complex' },
  { name: 'qint8', size: 1, storage: 'QInt8Storage', kind: 'quantized' },
  { name: 'quint8', size: 1, storage: 'QUInt8Storage', kind: 'quantized' },
  { name: 'qint32', size: 4, storage: 'QInt32Storage', kind: 'quantized' },
  { name: 'quint4x2', size: 1, storage: 'QUInt4x2Storage', kind: 'quantized' },
  { name: 'quint2x4', size: 1, storage: 'QUInt2x4Storage', kind: 'quantized' },
  { name: 'float8_e4m3fn', size: 1, kind: 'float8', safetensors: 'F8_E4M3' },
  { name: 'float8_e5m2', size: 1, kind: 'float8', safetensors: 'F8_E5M2' },
  { name: 'float8_e4m3fnuz', size: 1, kind: 'float8' },
  { name: 'float8_e5m2fnuz', size: 1, kind: 'float8' },
  { name: 'float8_e8m0fnu', size: 1, kind: 'float8', safetensors: 'F8_E8M0' },
  { name: 'float4_e2m1fn_x2', size: 1, kind: 'float8', safetensors: 'F4' },
  { name: 'bits1x8', size: 1, kind: 'bits' },
  { name: 'bits2x4', size: 1, kind: 'bits' },
  { name: 'bits4x2', size: 1, kind: 'bits' },
  { name: 'bits8', size: 1, kind: 'bits' },
  { name: 'bits16', size: 2, kind: 'bits' },
  ...[1, 2, 3, 4, 5, 6, 7].flatMap((n): DTypeInfo[] => [
    { name: `uint${n}`, size: 1, kind: 'uint' },
    { name: `int${n}`, size: 1, kind: 'int' },
  ]),
];

const byName = new Map(DTYPES.map((d) => [d.name, d]));
const byStorage = new Map(DTYPES.filter((d) => d.storage).map((d) => [d.storage!, d]));
const bySafetensors = new Map(DTYPES.filter((d) => d.safetensors).map((d) => [d.safetensors!, d]));

/** Aliases torch accepts as attribute names (`torch.float`, `torch.half`, ...). */
const ALIASES: Record<string, string> = {
  float: 'float32',
  double: 'float64',
  half: 'float16',
  long: 'int64',
  int: 'int32',
  short: 'int16',
  cfloat: 'complex64',
  cdouble: 'complex128',
  chalf: 'complex32',
  complex: 'complex64',
};

export function dtypeByName(name: string): DTypeInfo | undefined {
  return byName.get(ALIASES[name] ?? name);
}
/** `FloatStorage` → float32; `UntypedStorage` and `ByteStorage` → uint8. */
export function dtypeByStorage(storageClass: string): DTypeInfo | undefined {
  if (storageClass === 'UntypedStorage' || storageClass === '_UntypedStorage') return byName.get('uint8');
  return byStorage.get(storageClass);
}
export function dtypeBySafetensors(tag: string): DTypeInfo | undefined {
  return bySafetensors.get(tag);
}
export function storageClassFor(dtype: string): string | undefined {
  return byName.get(dtype)?.storage;
}
