/**
 * Small files built to cost a reader time or memory out of all proportion to their size, each
 * one a case the hostile-input campaign (issue 16) found. Built byte by byte here, so the tests
 * need no committed binaries and say exactly what each input is.
 */
import * as zlib from 'node:zlib';

const PROTO2 = [0x80, 0x02];
const STOP = 0x2e;

function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

/**
 * Nested lists that share memo entries: list k holds list k-1 twice, so `depth` levels make
 * 2^depth paths from the root (246 bytes for depth 40).
 */
export function memoDagLists(depth = 40): Buffer {
  const out: number[] = [...PROTO2, 0x5d, 0x71, 0, 0x30]; // EMPTY_LIST, BINPUT 0, POP
  for (let k = 1; k <= depth; k++) out.push(0x28, 0x68, k - 1, 0x68, k - 1, 0x6c, 0x71, k, ...(k < depth ? [0x30] : [])); // MARK BINGET BINGET LIST BINPUT (POP)
  out.push(STOP);
  return Buffer.from(out);
}

/**
 * One list appended to itself `n` times (`l.append(l)`, fickling's memo-expansion sample): few
 * bytes, one list, but n^d paths to depth d for anything that walks paths instead of objects.
 */
export function selfAppendedList(n = 40): Buffer {
  const out: number[] = [...PROTO2, 0x5d, 0x71, 0, 0x28]; // EMPTY_LIST, BINPUT 0, MARK
  for (let k = 0; k < n; k++) out.push(0x68, 0); // BINGET 0
  out.push(0x4b, 3, 0x65, STOP); // BININT1 3, APPENDS
  return Buffer.from(out);
}

/** The same DAG made of tuples and used as a dict key: hashing or printing the key expands it. */
export function tupleDagDictKey(depth = 60): Buffer {
  const out: number[] = [...PROTO2, 0x7d, 0x29, 0x71, 0, 0x30]; // EMPTY_DICT, EMPTY_TUPLE, BINPUT 0, POP
  for (let k = 1; k <= depth; k++) out.push(0x68, k - 1, 0x68, k - 1, 0x86, 0x71, k, ...(k < depth ? [0x30] : [])); // BINGET BINGET TUPLE2 BINPUT (POP)
  out.push(0x4b, 1, 0x73, STOP); // BININT1 1, SETITEM
  return Buffer.from(out);
}

/** One LONG4 integer of `bytes` bytes. */
export function bigLong4(bytes = 200_000): Buffer {
  const body = Buffer.alloc(bytes, 0x5a);
  return Buffer.concat([Buffer.from([...PROTO2, 0x8b, ...le32(bytes)]), body, Buffer.from([STOP])]);
}

/** Lists nested `depth` deep: EMPTY_LIST pushed `depth` times, then APPEND folds them inwards. */
export function deepLists(depth = 100_000): Buffer {
  return Buffer.concat([Buffer.from(PROTO2), Buffer.alloc(depth, 0x5d), Buffer.alloc(depth - 1, 0x61), Buffer.from([STOP])]);
}

/** Dicts nested `depth` deep, each under the key 'a' (a state-dict-like shape). */
export function deepDicts(depth = 100_000): Buffer {
  const out: number[] = [...PROTO2];
  for (let i = 0; i < depth; i++) out.push(0x7d, 0x8c, 1, 0x61); // EMPTY_DICT, SHORT_BINUNICODE 'a'
  out.push(0x7d); // the innermost dict
  for (let i = 0; i < depth; i++) out.push(0x73); // SETITEM
  out.push(STOP);
  return Buffer.from(out);
}

/** A protocol-0 UNICODE argument with the escape `\Uffffffff`, past the last code point (behind PROTO 2, which may use any older opcode). */
export function badUnicodeEscape(): Buffer {
  return Buffer.concat([Buffer.from(PROTO2), Buffer.from('V\\Uffffffff\n.', 'latin1')]);
}

/** A safetensors file with `count` one-element float32 tensors (500,000 make 44 MB). */
export function manyTensorSafetensors(count = 500_000): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(`"layers.${i}.w":{"dtype":"F32","shape":[1],"data_offsets":[${i * 4},${i * 4 + 4}]}`);
  let header = Buffer.from(`{${parts.join(',')}}`);
  const pad = (8 - (header.length % 8)) % 8;
  header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.alloc(count * 4)]);
}

/** A torch-shaped zip whose `archive/data.pkl` is deflated from `inflated` bytes (a valid pickle padded with zeros). */
export function zipBomb(inflated = 256 << 20): Buffer {
  const pickle = Buffer.alloc(inflated);
  pickle.set([...PROTO2, 0x7d, STOP]); // {} then zeros torch never reads
  const entries = [
    { name: 'archive/data.pkl', data: pickle },
    { name: 'archive/version', data: Buffer.from('3\n') },
  ];
  return makeZip(entries.map((e) => ({ name: e.name, raw: e.data, deflate: e.name.endsWith('.pkl') })));
}

/**
 * A minimal zip writer (stored or deflated entries, no zip64): enough for the cases above and the
 * .npz tests. `declaredSize` writes another uncompressed size than the entry's (a lying header).
 */
export function makeZip(entries: { name: string; raw: Uint8Array; deflate?: boolean; declaredSize?: number }[]): Buffer {
  const locals: Uint8Array[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = e.deflate ? zlib.deflateRawSync(e.raw, { level: 9 }) : e.raw;
    const name = Buffer.from(e.name);
    const crc = zlib.crc32(e.raw);
    const size = e.declaredSize ?? e.raw.length;
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(e.deflate ? 8 : 0, 8);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(data.length, 18);
    h.writeUInt32LE(size, 22);
    h.writeUInt16LE(name.length, 26);
    locals.push(h, name, data);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(e.deflate ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(data.length, 20);
    c.writeUInt32LE(size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, name);
    offset += 30 + name.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A shard index whose weight map names the index itself as a shard. */
export function selfListingIndex(name = 'model.bin.index.json'): string {
  return JSON.stringify({ metadata: { total_size: 4 }, weight_map: { 'a.weight': name } });
}

/**
 * An ONNX model (ModelProto, onnx/onnx.proto) whose one initializer `w` holds `floats` float32
 * values of `raw_data`, as torch.onnx.export lays it out: a Relu node, then the initializer, then
 * the graph's input and output, then opset_import. Returned as the bytes before the payload and
 * after it, so a test can write the payload as a hole (a sparse file) of `floats * 4` bytes.
 */
export function onnxAroundRawData(floats: number): { before: Buffer; payloadBytes: number; after: Buffer } {
  const varint = (v: number): number[] => {
    const out: number[] = [];
    for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v % 128) | 0x80);
    out.push(v);
    return out;
  };
  const field = (no: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([...varint(no * 8 + 2), ...varint(payload.length)]), payload]);
  const str = (no: number, s: string): Buffer => field(no, Buffer.from(s, 'utf8'));
  const num = (no: number, v: number): Buffer => Buffer.from([...varint(no * 8), ...varint(v)]);
  const payloadBytes = floats * 4;
  const valueInfo = (name: string): Buffer => Buffer.concat([str(1, name), field(2, field(1, Buffer.concat([num(1, 1), field(2, field(1, num(1, floats)))])))]);
  const node = Buffer.concat([str(1, 'x'), str(1, 'w'), str(2, 'y'), str(3, 'relu0'), str(4, 'Add')]);
  const tensorHead = Buffer.concat([num(1, floats), num(2, 1), str(8, 'w')]);
  const rawHead = Buffer.from([...varint(9 * 8 + 2), ...varint(payloadBytes)]);
  const tensorLen = tensorHead.length + rawHead.length + payloadBytes;
  const tail = Buffer.concat([field(11, valueInfo('x')), field(12, valueInfo('y'))]);
  const graphHead = Buffer.concat([field(1, node), str(2, 'g'), Buffer.from([...varint(5 * 8 + 2), ...varint(tensorLen)])]);
  const graphLen = graphHead.length + tensorLen + tail.length;
  const before = Buffer.concat([
    num(1, 8),
    str(2, 'pytorch'),
    str(3, '2.5.0'),
    Buffer.from([...varint(7 * 8 + 2), ...varint(graphLen)]),
    graphHead,
    tensorHead,
    rawHead,
  ]);
  const after = Buffer.concat([tail, field(8, num(2, 17))]);
  return { before, payloadBytes, after };
}
