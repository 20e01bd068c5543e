import { fail } from '../../errors.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import { asciiText } from '../../io/buffer-text.ts';

const CHUNK = 1 << 16;
/** Strings up to this many bytes take `asciiText`'s path: keys, names, device tags. */
const MAX_ASCII_FAST = 256;

/**
 * A forward-only byte cursor for the unpickler, over a window of a random-access file.
 * It reads in chunks, so a pickle that sits in front of gigabytes of storage data (the legacy
 * format) is read without touching the data, and every declared length is checked against
 * what is left before anything is allocated.
 */
export class PickleInput {
  private buf: Uint8Array = new Uint8Array(0);
  /** `buf` as a Buffer, for `asciiText` (made once per chunk) */
  private bufText: Buffer | null = null;
  private bufStart = 0;
  pos: number;
  readonly end: number;
  constructor(
    private readonly reader: RandomAccessReader,
    start = 0,
    end = reader.size,
  ) {
    this.pos = start;
    this.end = end;
  }
  /** the whole input when it is in memory (`fromBytes`), for a pass that reads it directly (`memoReads`) */
  private whole: Uint8Array | null = null;
  static fromBytes(bytes: Uint8Array, name: string): PickleInput {
    const input = new PickleInput({ name, size: bytes.length, read: (o, n) => bytes.subarray(o, o + n), close() {} });
    input.whole = bytes;
    return input;
  }
  /** The bytes `pos` and `end` index, when they are all in memory; null for a file read in chunks. */
  get inMemory(): Uint8Array | null {
    return this.whole;
  }
  get name(): string {
    return this.reader.name;
  }
  /** A second cursor at the same place over the same bytes (a look-ahead pass); this one does not move. */
  fork(): PickleInput {
    const f = new PickleInput(this.reader, this.pos, this.end);
    f.whole = this.whole;
    return f;
  }
  private need(n: number): void {
    if (n < 0 || this.pos + n > this.end) {
      fail(
        'truncated',
        `${this.reader.name}: pickle data ends early (needs ${n} bytes at ${this.pos}, ${Math.max(0, this.end - this.pos)} left); the file is truncated or corrupt`,
        this.reader.name,
      );
    }
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) {
      this.pos += n;
      return this.buf.subarray(rel, rel + n);
    }
    if (n > CHUNK) {
      const out = this.reader.read(this.pos, n);
      this.pos += n;
      return out;
    }
    this.bufStart = this.pos;
    this.buf = this.reader.read(this.pos, Math.min(CHUNK, this.end - this.pos));
    this.bufText = null;
    this.pos += n;
    return this.buf.subarray(0, n);
  }
  /** Where `n` more bytes sit in the current chunk, or -1: the fast path of the small reads, which make no view. */
  private inChunk(n: number): number {
    const rel = this.pos - this.bufStart;
    return rel >= 0 && rel + n <= this.buf.length && this.pos + n <= this.end ? rel : -1;
  }
  /**
   * The next `n` bytes as text, when they are all ASCII (then utf-8, latin-1 and ASCII read
   * them alike) and lie in the current chunk: no view and no decoder call per string (a
   * 100,000-tensor pickle has 200,000 short strings). Otherwise null, and nothing is read.
   */
  asciiText(n: number): string | null {
    const rel = this.inChunk(n);
    if (rel < 0 || n > MAX_ASCII_FAST) return null;
    const b = this.buf;
    const text = asciiText((this.bufText ??= Buffer.from(b.buffer, b.byteOffset, b.byteLength)), rel, rel + n);
    if (text !== null) this.pos += n;
    return text;
  }
  byte(): number {
    const rel = this.inChunk(1);
    if (rel < 0) return this.bytes(1)[0]!;
    this.pos++;
    return this.buf[rel]!;
  }
  uint16(): number {
    let rel = this.inChunk(2);
    let b = this.buf;
    if (rel < 0) [b, rel] = [this.bytes(2), 0];
    else this.pos += 2;
    return b[rel]! | (b[rel + 1]! << 8);
  }
  int32(): number {
    let rel = this.inChunk(4);
    let b = this.buf;
    if (rel < 0) [b, rel] = [this.bytes(4), 0];
    else this.pos += 4;
    return b[rel]! | (b[rel + 1]! << 8) | (b[rel + 2]! << 16) | (b[rel + 3]! << 24);
  }
  uint32(): number {
    return this.int32() >>> 0;
  }
  uint64(): number {
    const lo = this.uint32();
    const hi = this.uint32();
    const v = hi * 2 ** 32 + lo;
    if (hi >= 2 ** 21) fail('too-large', `${this.reader.name}: pickle declares a length of ${v} bytes`, this.reader.name);
    return v;
  }
  /**
   * A FRAME's 8-byte length, unchecked: nothing is allocated from it (the frame's bytes follow
   * inline), so even an impossible length is only recorded, for the scan's structure check.
   */
  frameLength(): number {
    const lo = this.uint32();
    return this.uint32() * 2 ** 32 + lo;
  }
  float64be(): number {
    const b = this.bytes(8);
    return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false);
  }
  /** A text line without its newline, decoded as latin-1 (protocol-0 arguments are ASCII or raw-unicode-escape). */
  line(): string {
    let s = '';
    for (;;) {
      if (this.pos >= this.end) this.need(1);
      const c = this.byte();
      if (c === 0x0a) return s;
      if (s.length > 1 << 20) fail('bad-pickle', `${this.reader.name}: pickle text argument is longer than 1 MiB`, this.reader.name);
      s += String.fromCharCode(c);
    }
  }
}
