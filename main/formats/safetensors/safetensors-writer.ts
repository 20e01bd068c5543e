/**
 * Writes safetensors files as the reference serializer does (huggingface/safetensors,
 * `safetensors/src/tensor.rs`, `prepare` and `Metadata::serialize`): tensors sorted by dtype,
 * largest alignment first, then by name (byte order); the header is compact JSON with
 * `__metadata__` first and each tensor as `{"dtype","shape","data_offsets"}` in data order, padded
 * with spaces to a multiple of 8 bytes; offsets start at 0 and are contiguous; the data section
 * ends the file. Tensor bytes are streamed from their sources, never held whole.
 */
import { crc32 } from '../../io/crc32.ts';
import { writeAll } from '../../io/write-all.ts';
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import { streamSource, type TensorSource } from '../values/tensor-source.ts';

/** `Dtype` in declaration order, which is increasing alignment (safetensors ≥ 0.6). */
const DTYPE_ORDER = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
];
/** Tags the reader accepts beyond `shared/dtypes.ts` (see safetensors.ts `EXTRA_TAGS`). */
const EXTRA: Record<string, string> = { float8_e4m3fnuz: 'F8_E4M3FNUZ', float8_e5m2fnuz: 'F8_E5M2FNUZ' };

/** The safetensors dtype tag for a torch dtype, or undefined when safetensors cannot hold it. */
export function safetensorsTag(dtype: DTypeInfo): string | undefined {
  return dtype.safetensors ?? EXTRA[dtype.name];
}

export interface SafetensorsEntry {
  name: string;
  source: TensorSource;
}

export interface WrittenTensor {
  name: string;
  tag: string;
  /** shape as written (F4 counts 4-bit values, twice torch's last dim) */
  shape: number[];
  begin: number;
  end: number;
  crc32: number;
}

export interface SafetensorsWriteResult {
  bytes: number;
  dataStart: number;
  headerBytes: number;
  tensors: WrittenTensor[];
}

/** Tensors in the order the reference writes them: dtype alignment descending, then name. */
export function safetensorsOrder<T extends { name: string; tag: string }>(entries: T[]): T[] {
  const rank = (tag: string): number => DTYPE_ORDER.indexOf(tag);
  return entries.slice().sort((a, b) => rank(b.tag) - rank(a.tag) || Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8')));
}

/** The header text: compact JSON, `__metadata__` first, then tensors in data order, space-padded to 8 bytes. */
export function safetensorsHeader(tensors: Omit<WrittenTensor, 'crc32'>[], metadata: [string, string][] | null): Buffer {
  const parts: string[] = [];
  if (metadata && metadata.length) parts.push(`"__metadata__":{${metadata.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  for (const t of tensors)
    parts.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.tag)},"shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  return Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
}

/**
 * Writes a whole safetensors file through `fd` (from position 0). Returns where each tensor went
 * and the CRC-32 of its bytes as they were written, for verification.
 */
export function writeSafetensors(
  fd: number,
  entries: SafetensorsEntry[],
  metadata: [string, string][] | null,
  opts: { onBytes?(n: number): void; checkCancelled?(): void } = {},
): SafetensorsWriteResult {
  const tagged = entries.map((e) => {
    const tag = safetensorsTag(e.source.dtype);
    if (!tag) fail('unsupported', `${e.name}: safetensors has no dtype for ${e.source.dtype.name}`);
    const shape = [...e.source.shape];
    if (tag === 'F4') shape[shape.length - 1]! *= 2; // float4_e2m1fn_x2 packs two values per element
    return { ...e, tag, shape };
  });
  const names = new Set<string>();
  for (const e of tagged) {
    if (names.has(e.name)) fail('usage', `two tensors would both be named ${JSON.stringify(e.name)} in the safetensors file`);
    names.add(e.name);
  }
  const ordered = safetensorsOrder(tagged);
  let offset = 0;
  const placed = ordered.map((e) => {
    const n = e.source.numel * e.source.dtype.size;
    const t = { name: e.name, tag: e.tag, shape: e.shape, begin: offset, end: offset + n };
    offset += n;
    return t;
  });
  const header = safetensorsHeader(placed, metadata);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeAll(fd, len, 0);
  writeAll(fd, header, 8);
  const dataStart = 8 + header.length;
  const out: WrittenTensor[] = [];
  ordered.forEach((e, i) => {
    const p = placed[i]!;
    let at = dataStart + p.begin;
    let crc = 0;
    streamSource(
      e.source,
      (chunk) => {
        crc = crc32(chunk, crc);
        writeAll(fd, chunk, at);
        at += chunk.length;
        opts.onBytes?.(chunk.length);
      },
      opts.checkCancelled,
    );
    if (at !== dataStart + p.end) fail('internal', `${e.name}: wrote ${at - dataStart - p.begin} of its ${p.end - p.begin} bytes`);
    out.push({ ...p, crc32: crc >>> 0 });
  });
  return { bytes: dataStart + offset, dataStart, headerBytes: header.length, tensors: out };
}
