/**
 * An ONNX file's bytes without its weights: a model can be up to 2 GiB, almost all of it the
 * `raw_data` of its initializers, and inspecting it needs only names, shapes and types. The
 * structure is read into a buffer as long as the file, at the same offsets, with each large
 * `raw_data` payload left unread (zero pages the process never touches, so they cost no memory).
 * The tensors' bytes are read from the file when asked for, by their offsets.
 *
 * Only ModelProto.graph (7) → GraphProto.initializer (5) → TensorProto.raw_data (9) is skipped
 * (onnx/onnx.proto); every other field is read whole, as the parser walks it.
 */
import type { RandomAccessReader } from '../../io/random-access.ts';
import { readVarint } from './protobuf.ts';

/** Files up to this size are read whole. */
const READ_WHOLE_BELOW = 64 << 20;
/** `raw_data` payloads at least this long are left unread. */
const SKIP_PAYLOADS_FROM = 64 << 10;
/** The most one read takes at once. */
const READ_PIECE = 16 << 20;

/** The file's bytes, with the large initializer payloads left as zeros (see above). */
export function readOnnxStructure(reader: RandomAccessReader): Uint8Array {
  if (reader.size < READ_WHOLE_BELOW) return reader.read(0, reader.size);
  const skips: [number, number][] = [];
  const file = reader.name;
  // a field's tag and length: at most 2 varints of 10 bytes
  const header = (pos: number, end: number): { no: number; wire: number; valStart: number; valEnd: number } => {
    const head = reader.read(pos, Math.min(20, end - pos));
    const [tag, p] = readVarint(head, 0, head.length, file);
    const wire = tag % 8;
    let valStart = pos + p;
    let valEnd = valStart;
    if (wire === 2) {
      const [len, q] = readVarint(head, p, head.length, file);
      valStart = pos + q;
      valEnd = valStart + len;
    } else if (wire === 0) valEnd = pos + readVarint(head, p, head.length, file)[1];
    else if (wire === 1) valEnd = valStart + 8;
    else if (wire === 5) valEnd = valStart + 4;
    // other wire types: the parser names the error; nothing more is skipped here
    else valEnd = end;
    return { no: Math.floor(tag / 8), wire, valStart, valEnd: Math.min(valEnd, end) };
  };
  const eachField = (start: number, end: number, f: (no: number, wire: number, valStart: number, valEnd: number) => void): void => {
    for (let pos = start; pos < end; ) {
      const h = header(pos, end);
      f(h.no, h.wire, h.valStart, h.valEnd);
      if (h.valEnd <= pos) return;
      pos = h.valEnd;
    }
  };
  eachField(0, reader.size, (no, wire, graphStart, graphEnd) => {
    if (no !== 7 || wire !== 2) return;
    eachField(graphStart, graphEnd, (no, wire, tensorStart, tensorEnd) => {
      if (no !== 5 || wire !== 2 || tensorEnd - tensorStart < SKIP_PAYLOADS_FROM) return;
      eachField(tensorStart, tensorEnd, (no, wire, rawStart, rawEnd) => {
        if (no === 9 && wire === 2 && rawEnd - rawStart >= SKIP_PAYLOADS_FROM) skips.push([rawStart, rawEnd]);
      });
    });
  });
  const out = Buffer.alloc(reader.size);
  let at = 0;
  for (const [from, to] of [...skips, [reader.size, reader.size] as [number, number]]) {
    for (; at < from; ) {
      const n = Math.min(READ_PIECE, from - at);
      out.set(reader.read(at, n), at);
      at += n;
    }
    at = Math.max(at, to);
  }
  return out;
}
