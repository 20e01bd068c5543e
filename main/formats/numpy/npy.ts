/**
 * NumPy `.npy` (numpy/lib/format.py): the magic `\x93NUMPY`, a major and minor version byte,
 * a header length (u16 LE for 1.0, u32 LE for 2.0 and 3.0), then the header: a Python dict
 * literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and a
 * newline (latin-1 for 1.0/2.0, UTF-8 for 3.0). The array's bytes follow the header.
 *
 * The header is parsed by a small literal parser here (numpy itself uses `ast.literal_eval`);
 * nothing is evaluated. Checks follow `_read_array_header`: exactly the three keys, `shape` a
 * tuple of ints, `fortran_order` a bool.
 */
import { fail } from '../../errors.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { PyDict, PyList, PyTuple, type PyValue } from '../values/python-values.ts';
import { dtypeByName, type DTypeInfo } from '../../../shared/dtypes.ts';
import { makeStorage } from '../safetensors/safetensors.ts';
import { headerTensor } from '../values/header-values.ts';
import { contiguousStrides } from '../values/torch-values.ts';

export const NPY_MAGIC = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59); // \x93NUMPY
/** Largest header we parse; numpy's own default limit is 10000 characters (`max_header_size`). */
export const MAX_NPY_HEADER = 1 << 20;

/** numpy type code (without byte order) -> torch dtype name. */
const NPY_TYPES: Record<string, string> = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
  b1: 'bool',
  c8: 'complex64',
  c16: 'complex128',
};

export interface NpyHeader {
  /** e.g. `1.0` */
  version: string;
  /** the descr string as written, e.g. `<f4` */
  descr: string;
  dtype: DTypeInfo;
  shape: number[];
  fortranOrder: boolean;
  /** offset of the first data byte, in the reader's coordinates */
  dataOffset: number;
  nbytes: number;
}

export function looksLikeNpy(reader: RandomAccessReader, offset = 0): boolean {
  if (reader.size - offset < 10) return false;
  const m = reader.read(offset, 6);
  return NPY_MAGIC.every((b, i) => m[i] === b);
}

/**
 * Reads the header at `offset`. `limit` is where the array's bytes must end by (the reader's
 * size unless the caller knows better, e.g. a compressed npz member of which only the head was
 * inflated). Reads only the header.
 */
export function readNpyHeader(reader: RandomAccessReader, offset = 0, limit = reader.size): NpyHeader {
  const file = reader.name;
  const invalid = (why: string): never => fail('not-a-checkpoint', `${file}: npy header is invalid: ${why}`, file);
  if (!looksLikeNpy(reader, offset)) fail('not-a-checkpoint', `${file}: not a .npy array (no \\x93NUMPY magic)`, file);
  const fixed = reader.read(offset + 6, 2);
  const major = fixed[0]!;
  const minor = fixed[1]!;
  if (!(major >= 1 && major <= 3 && minor === 0))
    fail('unsupported', `${file}: npy format version ${major}.${minor} is not supported (only 1.0, 2.0 and 3.0 exist)`, file);
  const lenBytes = major === 1 ? 2 : 4;
  const lv = reader.read(offset + 8, lenBytes);
  const headerLen = major === 1 ? lv[0]! | (lv[1]! << 8) : new DataView(lv.buffer, lv.byteOffset, 4).getUint32(0, true);
  if (headerLen > MAX_NPY_HEADER) fail('too-large', `${file}: npy header declares ${headerLen} bytes, more than the ${MAX_NPY_HEADER} allowed`, file);
  const headerStart = offset + 8 + lenBytes;
  const raw = reader.read(headerStart, headerLen);
  let text: string;
  if (major === 3) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      return invalid('a version 3.0 header must be UTF-8');
    }
  } else {
    text = Buffer.from(raw).toString('latin1');
  }
  let parsed: PyValue;
  try {
    parsed = parsePyLiteral(text, major <= 2);
  } catch (e) {
    return invalid((e as Error).message);
  }
  if (!(parsed instanceof PyDict)) return invalid('the header is not a dict');
  const d = parsed;
  const keys = d.entries.map(([k]) => k);
  if (keys.length !== 3 || !['descr', 'fortran_order', 'shape'].every((k) => d.has(k)))
    return invalid(`the header keys are ${keys.map(String).join(', ')}, not descr, fortran_order, shape`);
  const descrV = d.get('descr')!;
  const fortran = d.get('fortran_order');
  const shapeV = d.get('shape');
  if (typeof fortran !== 'boolean') return invalid('fortran_order is not True or False');
  if (!(shapeV instanceof PyTuple) || !shapeV.items.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0))
    return invalid('shape is not a tuple of non-negative integers');
  if (typeof descrV !== 'string') fail('unsupported', `${file}: structured arrays (a list of fields as descr) are not supported`, file);
  const descr = descrV as string;
  const dtype = npyDtype(file, descr);
  const shape = shapeV.items as number[];
  let numel = 1;
  for (const x of shape) numel *= x;
  const nbytes = numel * dtype.size;
  if (!Number.isSafeInteger(nbytes)) fail('too-large', `${file}: npy shape (${shape.join(', ')}) is impossibly large`, file);
  const dataOffset = headerStart + headerLen;
  if (dataOffset + nbytes > limit)
    fail('truncated', `${file}: the array needs ${nbytes} bytes after its header but only ${Math.max(0, limit - dataOffset)} are there; it is truncated`, file);
  return { version: `${major}.${minor}`, descr, dtype, shape, fortranOrder: fortran, dataOffset, nbytes };
}

/** Maps a descr such as `<f4` to a torch dtype, or fails with why it cannot. */
export function npyDtype(file: string, descr: string): DTypeInfo {
  const m = /^([<>|=])([a-zA-Z]\d*)$/.exec(descr);
  const code = m?.[2];
  const name = code ? NPY_TYPES[code] : undefined;
  if (name) {
    const dtype = dtypeByName(name)!;
    const order = m![1];
    if (dtype.size > 1 && order === '>')
      fail('unsupported', `${file}: big-endian arrays (descr '${descr}') are not supported; re-save with arr.astype('<${code}')`, file);
    if (dtype.size > 1 && order === '=')
      fail('unsupported', `${file}: descr '${descr}' has native byte order, which a file cannot pin down; re-save with an explicit '<'`, file);
    return dtype;
  }
  if (code !== undefined && /^O\d*$/.test(code))
    fail('unsupported', `${file}: object arrays (descr '${descr}') hold pickled Python objects and are not read; save plain numeric arrays instead`, file);
  fail('unsupported', `${file}: numpy dtype '${descr}' has no torch equivalent`, file);
}

/** Strides for an npy array: row-major, or column-major (reversed) when `fortran_order`. */
export function npyStrides(shape: number[], fortranOrder: boolean): number[] {
  if (!fortranOrder) return contiguousStrides(shape);
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let i = 0; i < shape.length; i++) {
    stride[i] = s;
    s *= Math.max(shape[i]!, 1);
  }
  return stride;
}

export function readNpy(reader: RandomAccessReader): FormatReading {
  const h = readNpyHeader(reader);
  const offset = h.dataOffset;
  const length = h.nbytes;
  const storage = makeStorage('0', h.dtype, length, () => ({ reader, offset, length }));
  const root = headerTensor(h.dtype, h.shape, npyStrides(h.shape, h.fortranOrder), storage);
  const notes: string[] = [];
  const extra = reader.size - (offset + length);
  if (extra > 0) notes.push(`${extra} bytes follow the array's data and are ignored`);
  return {
    format: 'npy',
    records: { version: h.version, descr: h.descr, fortran_order: h.fortranOrder ? 'True' : 'False' },
    root,
    globals: [],
    notes,
    close: () => reader.close(),
  };
}

/**
 * Python literals as `ast.literal_eval` reads them, limited to what npy headers hold: dict,
 * tuple, list, str, int, True, False, None. `longSuffix` accepts Python 2's `3L`
 * (numpy's `_filter_header` strips it for 1.0/2.0 headers).
 */
export function parsePyLiteral(text: string, longSuffix = false): PyValue {
  let p = 0;
  const bad = (what: string): never => {
    throw new Error(`${what} at character ${p}`);
  };
  const ws = (): void => {
    while (p < text.length && /[ \t\r\n]/.test(text[p]!)) p++;
  };
  const seq = (close: string, depth: number): PyValue[] => {
    const items: PyValue[] = [];
    for (;;) {
      ws();
      if (text[p] === close) {
        p++;
        return items;
      }
      items.push(value(depth + 1));
      ws();
      if (text[p] === ',') p++;
      else if (text[p] !== close) bad(`expected ',' or '${close}'`);
    }
  };
  const str = (): string => {
    const q = text[p]!;
    p++;
    let out = '';
    for (;;) {
      if (p >= text.length) bad('unterminated string');
      const c = text[p]!;
      if (c === q) {
        p++;
        return out;
      }
      if (c === '\n') bad('newline in string');
      if (c !== '\\') {
        out += c;
        p++;
        continue;
      }
      const e = text[p + 1];
      p += 2;
      const hex = (n: number): void => {
        const h = text.slice(p, p + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) bad('bad escape');
        out += String.fromCodePoint(parseInt(h, 16));
        p += n;
      };
      switch (e) {
        case '\\':
        case "'":
        case '"':
          out += e;
          break;
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '0':
          out += '\0';
          break;
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          out += '\\' + (e ?? ''); // Python keeps unknown escapes as written
      }
    }
  };
  const value = (depth: number): PyValue => {
    if (depth > 32) bad('nested too deeply');
    ws();
    const c = text[p];
    if (c === '{') {
      p++;
      const d = new PyDict();
      for (;;) {
        ws();
        if (text[p] === '}') {
          p++;
          return d;
        }
        const k = value(depth + 1);
        ws();
        if (text[p] !== ':') bad("expected ':'");
        p++;
        d.set(k, value(depth + 1));
        ws();
        if (text[p] === ',') p++;
        else if (text[p] !== '}') bad("expected ',' or '}'");
      }
    }
    if (c === '(') {
      p++;
      // `(3)` is just 3 in Python; a tuple needs a comma unless it is empty.
      const start = p;
      const items = seq(')', depth);
      if (items.length === 1 && !/,\s*\)$/.test(text.slice(start, p))) return items[0]!;
      return new PyTuple(items);
    }
    if (c === '[') {
      p++;
      return new PyList(seq(']', depth));
    }
    if (c === "'" || c === '"') return str();
    if ((c === 'u' || c === 'U') && (text[p + 1] === "'" || text[p + 1] === '"')) {
      p++;
      return str();
    }
    const word = /[A-Za-z_][A-Za-z0-9_]*/y;
    word.lastIndex = p;
    const w = word.exec(text)?.[0];
    if (w === 'True' || w === 'False' || w === 'None') {
      p += w.length;
      return w === 'True' ? true : w === 'False' ? false : null;
    }
    const num = /[-+]?\d+/y;
    num.lastIndex = p;
    const n = num.exec(text)?.[0];
    if (n !== undefined) {
      p += n.length;
      if (longSuffix && (text[p] === 'L' || text[p] === 'l')) p++;
      const big = BigInt(n);
      return Number.isSafeInteger(Number(big)) ? Number(big) : big;
    }
    return p >= text.length ? bad('unexpected end') : bad(`unexpected ${JSON.stringify(text[p])}`);
  };
  const v = value(0);
  ws();
  if (p !== text.length) bad('trailing characters');
  return v;
}
