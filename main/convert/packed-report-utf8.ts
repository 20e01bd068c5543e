import { CRC_READ, FAILED } from './tensor-checks.ts';
import { DROPPED, inPieces, KEPT, type PackedChecks, type PackedKeys, type PackedStrings } from './packed-report.ts';

// The `--json` text of a conversion's per-tensor lists made straight into UTF-8 bytes from the
// packed columns, where every key is plain ASCII (what torch's state dicts hold; other keys are
// written from `checksIn`'s and `keyChangePieces`' objects). Made as strings (its first form) each
// tensor's text is ~20 small strings joined into a rope, checked by a regular expression,
// flattened and encoded again by the write. Here a key is copied
// from the packed bytes and a CRC written from a table; no string is made per tensor. Writing the
// report of keys_100k.pt to a file in a fresh process (8 interleaved runs each, load 3.6, medians):
// 170 ms as text, 153 ms as bytes, of wall and of CPU. Most of what is left is the copy loops
// before V8 has optimised them: the report is written once per process.

/** Whether every string of `p` is written by JSON.stringify as it is (quoted) and is ASCII, so its bytes are its UTF-8 JSON text. */
const plainAscii = new WeakMap<PackedStrings, boolean>();

function isPlainAscii(p: PackedStrings): boolean {
  let plain = plainAscii.get(p);
  if (plain === undefined) {
    plain = p.encoding === 'latin1' && plainAsciiBytes(p.bytes);
    plainAscii.set(p, plain);
  }
  return plain;
}

/** A byte of each of 4 bytes set where `x`'s byte is below `n` (n ≤ 0x80; SWAR, as in "Bit Twiddling Hacks"' hasless). */
const hasLess = (x: number, n: number): number => (x - Math.imul(0x01010101, n)) & ~x & 0x80808080;

/**
 * No control character, '"', '\\' or byte past ASCII (latin1's upper half is two bytes in
 * UTF-8) in `b`: four bytes at a time (8 MB of key text for 100,000 tensors: a byte loop took 28 ms).
 */
function plainAsciiBytes(b: Uint8Array): boolean {
  const words = b.byteOffset % 4 === 0 ? Math.floor(b.length / 4) : 0;
  const w = words ? new Uint32Array(b.buffer, b.byteOffset, words) : new Uint32Array(0);
  for (let i = 0; i < words; i++) {
    const x = w[i]!;
    if ((x & 0x80808080) | hasLess(x, 0x20) | hasLess(x ^ 0x22222222, 1) | hasLess(x ^ 0x5c5c5c5c, 1)) return false;
  }
  for (let i = 4 * words; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c >= 0x80 || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** Whether `checksUtf8` can write these checks (else `--json` writes them from `checksIn`'s objects). */
export const checksHaveUtf8 = (p: PackedChecks): boolean => isPlainAscii(p.keys);

/** Whether `keyChangeUtf8Pieces` can write these key changes. */
export const keyChangesHaveUtf8 = (p: PackedKeys): boolean => isPlainAscii(p.from) && isPlainAscii(p.renamed);

const ascii = (s: string): Uint8Array => Buffer.from(s, 'latin1');
/** Two lowercase hex digits per byte value, as ASCII codes. */
const HEX_CODES = Uint8Array.from({ length: 512 }, (_, i) => (i & 1 ? (i >> 1) & 15 : i >> 5).toString(16).charCodeAt(0));
const PATH = ascii('{"path":[');
const SOURCE_PATH = ascii('],"sourcePath":[');
const DTYPE = ascii('],"dtype":');
const SHAPE = ascii(',"shape":[');
const DEVICE = ascii('],"device":');
const CRC = ascii(',"crc32":"');
const OK_TRUE = ascii('","ok":true}');
const OK_FALSE = ascii('","ok":false');
const PROBLEM = ascii(',"problem":');
const FROM = ascii('{"from":"');
const TO = ascii('","to":');
const NULL_END = ascii('null}');
const QUOTE_END = ascii('"}');

/** A growing buffer of bytes. */
class Bytes {
  buf: Buffer;
  at = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, size));
  }
  /** room for `n` more bytes */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
  /** a few bytes (a byte loop: `set` makes a view per call where the source is a subarray, and costs a call) */
  bytes(b: Uint8Array, start = 0, end = b.length): void {
    this.room(end - start);
    const buf = this.buf;
    let at = this.at;
    for (let i = start; i < end; i++) buf[at++] = b[i]!;
    this.at = at;
  }
  byte(c: number): void {
    this.room(1);
    this.buf[this.at++] = c;
  }
  /** string `i` of plain-ASCII packed strings, without quotes */
  stringOf(p: PackedStrings, i: number): void {
    this.bytes(p.bytes, i ? p.ends[i - 1]! : 0, p.ends[i]!);
  }
  /** any text, UTF-8 encoded */
  text(s: string): void {
    this.room(s.length * 3);
    this.at += this.buf.write(s, this.at, 'utf8');
  }
  /** `JSON.stringify(n)` */
  number(n: number): void {
    if (!(n >= 0 && n < 0x100000000 && n % 1 === 0)) return this.text(JSON.stringify(n));
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    this.room(digits);
    this.at += digits;
    for (let at = this.at - 1; at >= this.at - digits; at--, n = Math.floor(n / 10)) this.buf[at] = 0x30 + (n % 10);
  }
  hex8(n: number): void {
    this.room(8);
    for (let shift = 24; shift >= 0; shift -= 8) {
      const b = (n >>> shift) & 255;
      this.buf[this.at++] = HEX_CODES[2 * b]!;
      this.buf[this.at++] = HEX_CODES[2 * b + 1]!;
    }
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}

/** A check's text takes about this much besides its path (for the first guess of a piece's size) */
const BYTES_PER_CHECK = 128;

/** `JSON.stringify(checksIn(p, from, to)).slice(1, -1)` as UTF-8 bytes (only where `checksHaveUtf8(p)`). */
export function checksUtf8(p: PackedChecks, from: number, to: number): Uint8Array {
  to = Math.min(to, p.count);
  const keyBytes = (i: number): number => (i > 0 ? (p.keys.ends[p.pathEnds[i - 1]! - 1] ?? 0) : 0);
  const out = new Bytes(2 * (keyBytes(to) - keyBytes(from)) + (to - from) * BYTES_PER_CHECK);
  const dtypes = p.dtypes.map((d) => Buffer.from(JSON.stringify(d)));
  const devices = p.devices.map((d) => Buffer.from(JSON.stringify(d)));
  for (let i = from; i < to; i++) {
    if (i > from) out.byte(0x2c); // ','
    out.bytes(PATH);
    const pathStart = out.at;
    for (let k = i ? p.pathEnds[i - 1]! : 0, first = k; k < p.pathEnds[i]!; k++) {
      if (k > first) out.byte(0x2c);
      // a list index's key text is `String(index)`, which is also its JSON text: written unquoted
      if (p.numberKeys[k]) out.stringOf(p.keys, k);
      else {
        out.byte(0x22);
        out.stringOf(p.keys, k);
        out.byte(0x22);
      }
    }
    const pathEnd = out.at;
    out.bytes(SOURCE_PATH);
    out.bytes(out.buf, pathStart, pathEnd);
    out.bytes(DTYPE);
    out.bytes(dtypes[p.dtypeIds[i]!]!);
    out.bytes(SHAPE);
    for (let d = i ? p.shapeEnds[i - 1]! : 0, first = d; d < p.shapeEnds[i]!; d++) {
      if (d > first) out.byte(0x2c);
      out.number(p.dims[d]!);
    }
    out.bytes(DEVICE);
    out.bytes(devices[p.deviceIds[i]!]!);
    out.bytes(CRC);
    const flags = p.flags[i]!;
    if (flags & CRC_READ) out.hex8(p.crcs[i]!);
    if (!(flags & FAILED)) out.bytes(OK_TRUE);
    else {
      out.bytes(OK_FALSE);
      const problem = p.problems.get(i);
      if (problem !== undefined) {
        out.bytes(PROBLEM);
        out.text(JSON.stringify(problem));
      }
      out.byte(0x7d); // '}'
    }
  }
  return out.done();
}

/** `keyChangePieces(p)` as `JSON.stringify(piece).slice(1, -1)` in UTF-8 bytes (only where `keyChangesHaveUtf8(p)`). */
export function keyChangeUtf8Pieces(p: PackedKeys): (from: number, to: number) => Uint8Array {
  return inPieces(p, keyChangesUtf8);
}

function keyChangesUtf8(p: PackedKeys, from: number, to: number, renamedBefore: number): Uint8Array {
  let renamed = renamedBefore;
  const fromBytes = (i: number): number => (i > 0 ? p.from.ends[i - 1]! : 0);
  const out = new Bytes(2 * (fromBytes(to) - fromBytes(from)) + (to - from) * 32);
  for (let i = from; i < to; i++) {
    if (i > from) out.byte(0x2c);
    out.bytes(FROM);
    const start = out.at;
    out.stringOf(p.from, i);
    const end = out.at;
    out.bytes(TO);
    const kind = p.kinds[i];
    if (kind === DROPPED) out.bytes(NULL_END);
    else {
      out.byte(0x22);
      if (kind === KEPT) out.bytes(out.buf, start, end);
      else out.stringOf(p.renamed, renamed++);
      out.bytes(QUOTE_END);
    }
  }
  return out.done();
}
