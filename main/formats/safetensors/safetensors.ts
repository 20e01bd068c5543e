/**
 * safetensors (huggingface/safetensors, `safetensors/src/tensor.rs`): an 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`,
 * then the data section. Offsets are relative to the data section.
 *
 * Validation follows `SafeTensors::read_metadata` and `Metadata::validate`: N at most 100 MB and
 * inside the file; the header valid UTF-8 JSON object; tensors sorted by offsets must tile the
 * data section from 0 to its end with no hole and no overlap (`InvalidOffset`,
 * `MetadataIncompleteBuffer`); each tensor's byte length equals numel × element size
 * (`TensorInvalidInfo`). Only the first 8 + N bytes are read when a file is opened.
 */
import { isUtf8 } from 'node:buffer';
import { fail } from '../../errors.ts';
import { JsonObject, parseOrderedJson, type JsonValue } from './ordered-json.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import { contiguousStrides, TorchStorage, type ByteRange } from '../values/torch-values.ts';
import { fileRangeStorage, headerTensor } from '../values/header-values.ts';
import { PyDict } from '../values/python-values.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { dtypeByName, dtypeBySafetensors, storageClassFor, type DTypeInfo } from '../../../shared/dtypes.ts';

/** `MAX_HEADER_SIZE` in tensor.rs. */
export const MAX_HEADER_SIZE = 100_000_000;

/**
 * Tags the reference knows that `shared/dtypes.ts` does not carry a safetensors tag for
 * (safetensors 0.6+ `Dtype::F8_E4M3FNUZ` / `F8_E5M2FNUZ`, bindings/python `torch.py` `_TYPES`).
 */
const EXTRA_TAGS: Record<string, string> = { F8_E4M3FNUZ: 'float8_e4m3fnuz', F8_E5M2FNUZ: 'float8_e5m2fnuz' };

/** Tags the reference defines that torch has no dtype for. */
const KNOWN_UNREADABLE_TAGS = new Set(['F6_E2M3', 'F6_E3M2']);

export function safetensorsDtype(tag: string): DTypeInfo | undefined {
  const extra = EXTRA_TAGS[tag];
  return extra ? dtypeByName(extra) : dtypeBySafetensors(tag);
}

/** The first 8 bytes are a plausible header length and the header starts with `{`. Reads 9 bytes. */
export function looksLikeSafetensors(reader: RandomAccessReader): boolean {
  if (reader.size < 10) return false;
  const head = reader.read(0, 9);
  const n = view(head).getBigUint64(0, true);
  return n >= 2n && n <= 0xffffffffn && head[8] === 0x7b;
}

export function readSafetensors(reader: RandomAccessReader): FormatReading {
  const root = new PyDict(true);
  // Aliases: tensors with the same byte range and dtype share one storage. After validation only
  // empty tensors at the same offset can coincide; the reference forbids any other overlap, so
  // only empty tensors are looked up (500,000 range keys cost a string and a Map entry each).
  const emptyAt = new Map<string, TorchStorage>();
  let hasF4 = false;
  // tensors are made as the header is parsed; they are dropped with `root` if it turns out invalid
  const header = readSafetensorsHeader(reader, (t, dataStart) => {
    if (root.has(t.name)) return false;
    const rangeKey = t.begin === t.end ? `${t.begin}:${t.dtype.name}` : null;
    let storage = rangeKey === null ? undefined : emptyAt.get(rangeKey);
    if (!storage) {
      storage = rangeStorage(t.name, t.dtype, t.end - t.begin, reader, dataStart + t.begin);
      if (rangeKey !== null) emptyAt.set(rangeKey, storage);
    }
    if (t.tag === 'F4') hasF4 = true;
    root.set(t.name, headerTensor(t.dtype, t.torchShape, contiguousStrides(t.torchShape), storage));
    return true;
  });
  const records: Record<string, string> = { header_bytes: String(header.headerBytes) };
  for (const [k, v] of header.metadata) records[`metadata.${k}`] = v;
  const notes: string[] = [];
  if (hasF4) notes.push('F4 tensors are shown as torch float4_e2m1fn_x2: two 4-bit values per element, so the last dimension is half the one in the file');
  return { format: 'safetensors', records, root, globals: [], notes, close: () => reader.close() };
}

export interface SafetensorsEntry {
  name: string;
  /** the tag as written, e.g. `BF16` */
  tag: string;
  dtype: DTypeInfo;
  /** shape as written in the header */
  shape: number[];
  /** shape as torch sees it (differs only for F4, whose pairs torch packs into one element) */
  torchShape: number[];
  /** offsets relative to the data section */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  headerBytes: number;
  /** absolute offset of the data section (8 + N) */
  dataStart: number;
  /** in header order */
  tensors: SafetensorsEntry[];
  /** `__metadata__`, in header order */
  metadata: [string, string][];
}

/**
 * Reads and validates the header; never touches tensor bytes. With `onEntry`, each good tensor
 * entry goes to it as it is parsed (in header order, with the data section's absolute offset; it
 * returns false for a name it has had) and `tensors` stays empty: the caller keeps what it needs, not an entry object per tensor. The
 * checks that need every entry (tiling) still run before this returns, so a caller must drop
 * what it built when this throws.
 */
export function readSafetensorsHeader(reader: RandomAccessReader, onEntry?: (entry: SafetensorsEntry, dataStart: number) => boolean): SafetensorsHeader {
  const file = reader.name;
  const invalid = (why: string): never => fail('not-a-checkpoint', `${file}: safetensors header is invalid: ${why}`, file);
  if (reader.size < 8) fail('not-a-checkpoint', `${file}: not a safetensors file (only ${reader.size} bytes, less than the 8-byte header length)`, file);
  const n64 = view(reader.read(0, 8)).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE))
    fail('too-large', `${file}: safetensors header length ${n64} is over the 100 MB limit (HeaderTooLarge); the file is damaged or not safetensors`, file);
  const n = Number(n64);
  if (8 + n > reader.size)
    fail(
      'truncated',
      `${file}: safetensors header claims ${n} bytes but the file has only ${reader.size - 8} after the length; it is truncated or not safetensors`,
      file,
    );
  const headerBytes = reader.read(8, n);
  // checked in place: the parser reads the bytes, so a 48 MB header is never also a 48 MB string
  if (!isUtf8(headerBytes)) return invalid('header is not valid UTF-8');
  const dataStart = 8 + n;
  const dataLen = reader.size - dataStart;
  const tensors: SafetensorsEntry[] = [];
  const metadata: [string, string][] = [];
  // For the tiling check: each good entry's name and byte range, in header order. Plain arrays
  // of numbers, not the entries: with `onEntry` no entry outlives its own callback.
  const names: string[] = [];
  const begins: number[] = [];
  const ends: number[] = [];
  // Duplicate names: `onEntry` says for the good entries; names met after the first bad entry
  // (or all of them without `onEntry`) go in a Set.
  let others: Set<string> | null = onEntry ? null : new Set();
  let hadMetadata = false;
  // Each entry is checked as it is parsed. The file's verdict is what checking the whole parsed
  // header in order would give: a JSON error anywhere comes first, then the first bad entry.
  let firstBad: unknown = null;
  const eachEntry = (name: string, value: JsonValue): boolean => {
    if (name === '__metadata__') {
      if (hadMetadata) return false;
      hadMetadata = true;
    } else if (others?.has(name)) return false;
    if (firstBad === null) {
      try {
        const entry = checkEntry(name, value);
        if (entry === null) return true;
        if (onEntry) {
          if (!onEntry(entry, dataStart)) return false;
        } else tensors.push(entry);
        names.push(name);
        begins.push(entry.begin);
        ends.push(entry.end);
        others?.add(name);
        return true;
      } catch (e) {
        firstBad = e;
        // the good names so far are the consumer's to know: from here on a Set holds them all
        others ??= new Set(names);
      }
    }
    if (name === '__metadata__') return true;
    if (others!.has(name)) return false;
    others!.add(name);
    return true;
  };
  let json: JsonValue;
  try {
    json = parseOrderedJson(headerBytes, eachEntry);
  } catch (e) {
    return invalid((e as Error).message);
  }
  if (!(json instanceof JsonObject)) return invalid('the header is not a JSON object');
  if (firstBad !== null) throw firstBad;

  /** The entry a tensor's header object describes, or null for `__metadata__`; throws for a bad one. */
  function checkEntry(name: string, value: JsonValue): SafetensorsEntry | null {
    if (name === '__metadata__') {
      if (value === null) return null;
      if (!(value instanceof JsonObject)) return invalid('__metadata__ is not an object of strings');
      for (const [k, v] of value.entries) {
        if (typeof v !== 'string') return invalid(`__metadata__ value for ${JSON.stringify(k)} is not a string`);
        metadata.push([k, v]);
      }
      return null;
    }
    // only an error names it: 500,000 good tensors need no label text
    const label = (): string => `tensor ${JSON.stringify(name)}`;
    if (!(value instanceof JsonObject)) return invalid(`${label()} is not an object with dtype, shape and data_offsets`);
    const tag = value.get('dtype');
    const shapeV = value.get('shape');
    const offsV = value.get('data_offsets');
    if (typeof tag !== 'string') return invalid(`${label()} has no string dtype`);
    if (!Array.isArray(shapeV) || !shapeV.every(isUint)) return invalid(`${label()} shape is not a list of non-negative integers`);
    if (!Array.isArray(offsV) || offsV.length !== 2 || !offsV.every(isUint))
      return invalid(`${label()} data_offsets is not [begin, end] with non-negative integers`);
    const shape = shapeV as number[];
    const [begin, end] = offsV as [number, number];
    const dtype = safetensorsDtype(tag);
    if (!dtype) {
      if (KNOWN_UNREADABLE_TAGS.has(tag)) fail('unsupported', `${file}: ${label()} has safetensors dtype ${tag}, which torch has no dtype for`, file);
      fail('unsupported', `${file}: ${label()} has unknown safetensors dtype ${JSON.stringify(tag)}`, file);
    }
    if (begin > end) return invalid(`${label()} data_offsets [${begin}, ${end}] end before they begin (InvalidOffset)`);
    // Element count and byte length, with the overflow checks of `Metadata::validate`.
    let numel = 1;
    for (const d of shape) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) return invalid(`${label()} shape [${shape.join(', ')}] overflows (ValidationOverflow)`);
    }
    const bits = tag === 'F4' ? 4 : dtype.size * 8;
    const nbits = numel * bits;
    if (!Number.isSafeInteger(nbits)) return invalid(`${label()} shape [${shape.join(', ')}] overflows (ValidationOverflow)`);
    if (nbits % 8 !== 0) return invalid(`${label()} has ${numel} ${tag} elements, not a whole number of bytes (MisalignedSlice)`);
    if (end - begin !== nbits / 8)
      return invalid(
        `${label()} is ${tag} [${shape.join(', ')}] = ${nbits / 8} bytes but data_offsets [${begin}, ${end}] span ${end - begin} (TensorInvalidInfo)`,
      );
    if (end > dataLen)
      fail('truncated', `${file}: ${label()} needs data up to byte ${end} of the data section but the file has only ${dataLen}; it is truncated`, file);
    return { name, tag, dtype, shape, torchShape: torchShape(file, label, tag, shape), begin, end };
  }

  // Tiling check, in offset order as the reference sorts them (files are written in that order,
  // so the sort is skipped when they already are).
  const count = begins.length;
  let inOrder = true;
  for (let i = 1; i < count && inOrder; i++) inOrder = begins[i - 1]! < begins[i]! || (begins[i - 1] === begins[i] && ends[i - 1]! <= ends[i]!);
  const order = inOrder ? null : Array.from({ length: count }, (_, i) => i).sort((a, b) => begins[a]! - begins[b]! || ends[a]! - ends[b]!);
  let cursor = 0;
  for (let k = 0; k < count; k++) {
    const i = order ? order[k]! : k;
    const begin = begins[i]!;
    const end = ends[i]!;
    if (begin > cursor)
      return invalid(`tensor ${JSON.stringify(names[i])} begins at ${begin} but the previous tensor ends at ${cursor}, leaving a hole (InvalidOffset)`);
    if (begin < cursor)
      return invalid(`tensor ${JSON.stringify(names[i])} at [${begin}, ${end}] overlaps the previous tensor, which ends at ${cursor} (InvalidOffset)`);
    cursor = end;
  }
  if (cursor !== dataLen) return invalid(`the tensors cover ${cursor} bytes of data but the file has ${dataLen} after the header (MetadataIncompleteBuffer)`);
  return { headerBytes: n, dataStart, tensors, metadata };
}

/** F4: torch's `float4_e2m1fn_x2` packs two values per element, so the last dimension halves. */
function torchShape(file: string, label: () => string, tag: string, shape: number[]): number[] {
  if (tag !== 'F4') return shape;
  const last = shape[shape.length - 1];
  if (last === undefined || last % 2 !== 0)
    fail('unsupported', `${file}: ${label()} is F4 with shape [${shape.join(', ')}]; torch float4_e2m1fn_x2 needs an even last dimension`, file);
  return [...shape.slice(0, -1), last / 2];
}

// ---- shared by the npy/npz readers -------------------------------------------------------

/**
 * A storage for bytes that are not a torch storage on disk. Dtypes with a legacy storage class
 * get it (`FloatStorage`, ...); the rest become `UntypedStorage`, whose element is a byte, as
 * torch's `persistent_id` records untyped storages (torch/serialization.py `_save`).
 */
export function makeStorage(key: string, dtype: DTypeInfo, nbytes: number, locate: (() => ByteRange) | ByteRange): TorchStorage {
  const [cls, element, numel] = storageClassOf(dtype, nbytes);
  return new TorchStorage(key, cls, element, 'cpu', numel, locate);
}

/** The storage class, element type and element count `nbytes` of `dtype` are stored as (see `makeStorage`). */
function storageClassOf(dtype: DTypeInfo, nbytes: number): [string, DTypeInfo, number] {
  const cls = storageClassFor(dtype.name);
  return cls ? [cls, dtype, nbytes / dtype.size] : ['UntypedStorage', dtypeByName('uint8')!, nbytes];
}

/** `makeStorage` for `nbytes` at `offset` of `reader`, the range held by the storage itself. */
function rangeStorage(key: string, dtype: DTypeInfo, nbytes: number, reader: RandomAccessReader, offset: number): TorchStorage {
  const [cls, element, numel] = storageClassOf(dtype, nbytes);
  return fileRangeStorage(key, cls, element, numel, reader, offset);
}

function isUint(v: JsonValue): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
