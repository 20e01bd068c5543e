/**
 * The protobuf wire format, just what ONNX needs (https://protobuf.dev/programming-guides/encoding/):
 * a message is a run of fields, each a varint tag `(field_number << 3) | wire_type` and a value:
 * 0 varint, 1 fixed 64-bit, 2 length-delimited (strings, bytes, sub-messages, packed repeats),
 * 5 fixed 32-bit. Groups (3, 4) are long deprecated and ONNX never uses them.
 */
import { fail } from '../../errors.ts';

export interface PbField {
  no: number;
  wire: number;
  /** the whole field, tag included: [start, end) */
  start: number;
  end: number;
  /** wire 2: the payload [valStart, valEnd); wire 0/1/5: the value bytes */
  valStart: number;
  valEnd: number;
  /** wire 0: the varint (numbers above 2^53 lose precision, as dims never reach that) */
  varint: number;
}

/** Reads a varint at `pos`; returns [value, next position]. */
export function readVarint(buf: Uint8Array, pos: number, end: number, what: string): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) fail('truncated', `${what}: a number runs past the end of its message`);
    const b = buf[pos++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) return [v, pos];
    mul *= 128;
  }
  return fail('not-a-checkpoint', `${what}: a number is longer than 10 bytes; this is not protobuf data`);
}

/** The fields of one message, in file order. `what` names the file and message for errors. */
export function readFields(buf: Uint8Array, start: number, end: number, what: string): PbField[] {
  const out: PbField[] = [];
  let pos = start;
  while (pos < end) {
    const fieldStart = pos;
    const [tag, p] = readVarint(buf, pos, end, what);
    pos = p;
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no === 0) fail('not-a-checkpoint', `${what}: field number 0 at byte ${fieldStart}; this is not an ONNX protobuf`);
    let valStart = pos;
    let valEnd = pos;
    let varint = 0;
    if (wire === 0) {
      [varint, pos] = readVarint(buf, pos, end, what);
      valEnd = pos;
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      valEnd = pos;
    } else if (wire === 2) {
      const [len, q] = readVarint(buf, pos, end, what);
      valStart = q;
      valEnd = q + len;
      pos = valEnd;
    } else {
      fail('not-a-checkpoint', `${what}: protobuf wire type ${wire} at byte ${fieldStart} is not used by ONNX; the file is not an ONNX model or is damaged`);
    }
    if (pos > end) fail('truncated', `${what}: a field at byte ${fieldStart} runs past the end (${pos} > ${end}); the file is truncated`);
    out.push({ no, wire, start: fieldStart, end: pos, valStart, valEnd, varint });
  }
  return out;
}

const text = new TextDecoder('utf-8');
export function fieldString(buf: Uint8Array, f: PbField): string {
  return text.decode(buf.subarray(f.valStart, f.valEnd));
}

/** A repeated integer field, packed (one wire-2 field) or not (one varint each). Signed int64 wraps above 2^63. */
export function repeatedInts(buf: Uint8Array, fields: PbField[], what: string): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.wire === 0) out.push(signed(f.varint));
    else if (f.wire === 2) {
      let p = f.valStart;
      while (p < f.valEnd) {
        const [v, q] = readVarint(buf, p, f.valEnd, what);
        out.push(signed(v));
        p = q;
      }
    }
  }
  return out;
}

/** Varints of negative int32/int64 are 10-byte two's complement; as a double they land above 2^63. */
function signed(v: number): number {
  return v >= 2 ** 63 ? v - 2 ** 64 : v;
}

// ---- writing

export function varintBytes(v: number): number[] {
  if (v < 0 || !Number.isSafeInteger(v)) throw new RangeError(`varint ${v} out of range`);
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A growable byte buffer for writing messages. */
export class PbWriter {
  private parts: Uint8Array[] = [];
  length = 0;
  raw(b: Uint8Array): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  private small(bytes: number[]): void {
    this.raw(Uint8Array.from(bytes));
  }
  varintField(no: number, v: number): this {
    this.small([...varintBytes(no * 8), ...varintBytes(v)]);
    return this;
  }
  bytesField(no: number, payload: Uint8Array): this {
    this.small([...varintBytes(no * 8 + 2), ...varintBytes(payload.length)]);
    return this.raw(payload);
  }
  stringField(no: number, s: string): this {
    return this.bytesField(no, new TextEncoder().encode(s));
  }
  /** A length-delimited field whose payload is already split into parts (no copy). */
  partsField(no: number, payload: Uint8Array[]): this {
    const len = payload.reduce((a, b) => a + b.length, 0);
    this.small([...varintBytes(no * 8 + 2), ...varintBytes(len)]);
    for (const p of payload) this.raw(p);
    return this;
  }
  chunks(): Uint8Array[] {
    return this.parts;
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}
