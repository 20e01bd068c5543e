import * as zlib from 'node:zlib';
import { fail } from '../../errors.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import type { ByteRange } from '../values/torch-values.ts';
import { NameIndex } from './name-index.ts';
import { utf8Text } from '../../io/buffer-text.ts';

/**
 * A zip archive read by random access: only the end records and the central directory are read
 * when it is opened; an entry's bytes are read when asked for. Supports zip64 and archives that
 * start after other bytes (offsets are corrected by the distance the directory moved).
 */
export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  /** general-purpose flag bit 0: the record is encrypted */
  encrypted?: boolean;
}

/** Largest int V8 keeps in a field without a heap number of its own: a small integer is an int32 on 64-bit builds without pointer compression, as Node's are. */
const SMALL_INT = 0x7fffffff;

/** A number as a small integer when it is one: a sum with a double operand (`shift`) is a heap number even when integral. */
function smallIntOrNumber(n: number): number {
  return n >= 0 && n <= SMALL_INT ? n | 0 : n;
}

/**
 * An entry of the central directory. A 100,000-tensor checkpoint keeps 100,000 of them to the
 * end, copied by every scavenge: the CRC is kept as its 32 bits signed (an unsigned one ≥ 2³¹,
 * half of them, was a 16-byte heap number apiece) and read back unsigned.
 */
class CentralEntry implements ZipEntry {
  private readonly crcBits: number;
  readonly localHeaderOffset: number;
  declare encrypted?: boolean;
  constructor(
    readonly name: string,
    readonly method: number,
    crc32: number,
    readonly compressedSize: number,
    readonly uncompressedSize: number,
    localHeaderOffset: number,
  ) {
    // zip64 sizes and offsets come from BigInts, as doubles
    this.compressedSize = smallIntOrNumber(compressedSize);
    this.uncompressedSize = smallIntOrNumber(uncompressedSize);
    this.crcBits = crc32 | 0;
    this.localHeaderOffset = smallIntOrNumber(localHeaderOffset);
  }
  get crc32(): number {
    return this.crcBits >>> 0;
  }
}

/** Where `readCentralEntry` reads: the central directory as a view and as text, and the next record's offset. */
interface DirectoryCursor {
  readonly dv: DataView;
  readonly text: Buffer;
  p: number;
  readonly shift: number;
  /** the file's name, for errors */
  readonly name: string;
  /** the file's size, and the first record found to lie past it (-1: none yet) */
  readonly fileSize: number;
  firstPastEnd: number;
}

/** The central directory record `i` at `c.p`; moves `c.p` past it. */
function readCentralEntry(c: DirectoryCursor, i: number): ZipEntry {
  const { dv, name, p } = c;
  const length = dv.byteLength;
  if (p + 46 > length || dv.getUint32(p, true) !== CENTRAL_SIG) fail('corrupt-zip', `${name}: central directory entry ${i} is damaged`, name);
  const method = dv.getUint16(p + 10, true);
  const crc32 = dv.getUint32(p + 16, true);
  let compressedSize = dv.getUint32(p + 20, true);
  let uncompressedSize = dv.getUint32(p + 24, true);
  const nameLen = dv.getUint16(p + 28, true);
  const extraLen = dv.getUint16(p + 30, true);
  const commentLen = dv.getUint16(p + 32, true);
  let localHeaderOffset = dv.getUint32(p + 42, true);
  if (p + 46 + nameLen + extraLen + commentLen > length) fail('corrupt-zip', `${name}: central directory entry ${i} runs past the directory`, name);
  const entryName = utf8Text(c.text, p + 46, p + 46 + nameLen);
  // zip64 extended information extra field (id 1): only the fields that overflowed are present, in this order.
  let e = p + 46 + nameLen;
  const extraEnd = e + extraLen;
  while (e + 4 <= extraEnd) {
    const id = dv.getUint16(e, true);
    const size = dv.getUint16(e + 2, true);
    if (id === 1) {
      let q = e + 4;
      const fieldEnd = Math.min(e + 4 + size, extraEnd); // a field may not claim more bytes than the extra field holds
      const take = (): number => {
        if (q + 8 > fieldEnd) fail('corrupt-zip', `${name}: zip64 field of ${entryName} is too short`, name);
        const v = safeNumber(dv.getBigUint64(q, true), name);
        q += 8;
        return v;
      };
      if (uncompressedSize === 0xffffffff) uncompressedSize = take();
      if (compressedSize === 0xffffffff) compressedSize = take();
      if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
    }
    e += 4 + size;
  }
  const entry = new CentralEntry(entryName, method, crc32, compressedSize, uncompressedSize, localHeaderOffset + c.shift);
  if (dv.getUint16(p + 8, true) & 1) entry.encrypted = true;
  if (c.firstPastEnd < 0 && (entry.localHeaderOffset < 0 || entry.localHeaderOffset + 30 + entry.compressedSize > c.fileSize)) c.firstPastEnd = i;
  c.p = p + 46 + nameLen + extraLen + commentLen;
  return entry;
}

const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
/** The most a single in-memory record (e.g. data.pkl) may inflate to before we refuse it. */
export const MAX_RECORD_BYTES = 1 << 30;
/** How much a deflated pickle record may grow: pickles of real checkpoints deflate ~3-20:1. */
export const MAX_PICKLE_INFLATION = 100;
const MIN_PICKLE_BOUND = 16 << 20;
const HEADER_WINDOW = 64 << 10;
/** Records up to this size are read through the header window (many small tensors); larger ones are not. */
const SMALL_RECORD = 16 << 10;

function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export class ZipArchive {
  readonly entries: ZipEntry[];
  /** each name's last record (the one torch reads) */
  private readonly byName: NameIndex;
  private constructor(
    readonly reader: RandomAccessReader,
    entries: ZipEntry[],
    private readonly shift: number,
    byName?: NameIndex,
  ) {
    this.entries = entries;
    this.byName = byName ?? new NameIndex(entries);
  }

  /** True when the file ends with a zip end-of-central-directory record. Reads only the tail. */
  static looksLikeZip(reader: RandomAccessReader): boolean {
    return findEocd(reader) !== null;
  }

  /** Where the end-of-central-directory record starts, or null when the file has none. Reads only the tail. */
  static findEnd(reader: RandomAccessReader): number | null {
    return findEocd(reader);
  }

  /** Parses the end records and the central directory; `eocdAt` is `findEnd`'s answer when the caller has it. */
  static open(reader: RandomAccessReader, eocdAt: number | null = findEocd(reader)): ZipArchive {
    const name = reader.name;
    if (eocdAt === null) fail('corrupt-zip', `${name}: not a zip archive (no end-of-central-directory record); the file may be truncated`, name);
    const tail = new TailReads(reader, eocdAt);
    const eocd = view(tail.read(eocdAt, 22));
    let count = eocd.getUint16(10, true);
    let cdSize = eocd.getUint32(12, true);
    let cdOffset = eocd.getUint32(16, true);
    let cdEnd = eocdAt;
    // zip64: the locator sits right before the classic record (APPNOTE 4.3.15).
    if (eocdAt >= 20) {
      const loc = view(tail.read(eocdAt - 20, 20));
      if (loc.getUint32(0, true) === EOCD64_LOCATOR_SIG) {
        const rec64At = Number(loc.getBigUint64(8, true));
        // The zip64 record normally sits right before the locator; trust that position when the stated one disagrees (shifted archives).
        const expected = eocdAt - 20 - 56;
        const at = expected >= 0 && view(tail.read(expected, 4)).getUint32(0, true) === EOCD64_SIG ? expected : rec64At;
        const r = view(tail.read(at, 56));
        if (r.getUint32(0, true) !== EOCD64_SIG) fail('corrupt-zip', `${name}: zip64 end record is missing or damaged`, name);
        count = safeNumber(r.getBigUint64(32, true), name);
        cdSize = safeNumber(r.getBigUint64(40, true), name);
        cdOffset = safeNumber(r.getBigUint64(48, true), name);
        cdEnd = at;
      }
    }
    // Bytes before the archive (or after a rewrite) move every offset by the same amount.
    const shift = cdEnd - (cdOffset + cdSize);
    if (cdOffset + shift < 0 || cdSize > reader.size)
      fail('corrupt-zip', `${name}: central directory lies outside the file; the file is truncated or not a zip`, name);
    if (count > cdSize / 46 + 1) fail('corrupt-zip', `${name}: central directory claims ${count} entries in ${cdSize} bytes`, name);
    const cd = tail.read(cdOffset + shift, cdSize);
    const dv = view(cd);
    // names are decoded from this view of the directory, without a copy per entry (100,000 entries)
    const cdText = Buffer.from(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries: ZipEntry[] = [];
    // each record is read, and checked against the file's size, by a function of its own: this
    // loop runs once per archive, mostly unoptimized, while `readCentralEntry` is optimized after a
    // few hundred of 100,000 calls (a second loop over the entries for the size check ran in the
    // interpreter after V8 dropped this function's code, which had never seen it run)
    const cursor: DirectoryCursor = { dv, text: cdText, p: 0, shift, name, fileSize: reader.size, firstPastEnd: -1 };
    for (let i = 0; i < count; i++) entries.push(readCentralEntry(cursor, i));
    // a damaged record anywhere is reported first, then the first record past the end, as before
    if (cursor.firstPastEnd >= 0) {
      const en = entries[cursor.firstPastEnd]!;
      fail('truncated', `${name}: record ${en.name} lies past the end of the file (${reader.size} bytes); the file is truncated`, name);
    }
    return new ZipArchive(reader, entries, shift);
  }

  /** The same archive read through another reader of the same file: its directory is not parsed again. */
  over(reader: RandomAccessReader): ZipArchive {
    if (reader.size !== this.reader.size) return ZipArchive.open(reader);
    return new ZipArchive(reader, this.entries, this.shift, this.byName);
  }

  get(name: string): ZipEntry | undefined {
    const i = this.byName.find(name);
    return i < 0 ? undefined : this.entries[i];
  }

  /**
   * `get(folder + key)`, without making that name: torch names its storage records
   * `data/0` … `data/99999`, and 100,000 concatenated names, each flattened and hashed to look
   * it up, cost about a microsecond apiece.
   */
  getNumbered(folder: string, key: string): ZipEntry | undefined {
    const i = this.byName.findIn(folder, key);
    return i < 0 ? undefined : this.entries[i];
  }

  /** The first record a later one of the same name hides from `get`, if any (none when every name is distinct). */
  firstShadowed(): ZipEntry | undefined {
    const i = this.byName.firstShadowed;
    return i < 0 ? undefined : this.entries[i];
  }

  /**
   * Where an entry's stored bytes begin. torch pads the local header with an `FB` extra field so
   * the data is 64-byte aligned, and only the local header carries it, so the central directory's
   * extra length cannot be used (caffe2/serialize/inline_container.cc, `getPadding`).
   */
  dataRange(entry: ZipEntry): ByteRange {
    // small records share header windows; a large one's header is read alone, so its data is never read at open
    const h = entry.compressedSize <= SMALL_RECORD ? this.localHeader(entry.localHeaderOffset) : dataView(this.reader.read(entry.localHeaderOffset, 30));
    if (h.getUint32(0, true) !== LOCAL_SIG) fail('corrupt-zip', `${this.reader.name}: local header of ${entry.name} is damaged`, this.reader.name);
    const offset = entry.localHeaderOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
    if (offset + entry.compressedSize > this.reader.size)
      fail('truncated', `${this.reader.name}: record ${entry.name} is cut short; the file is truncated`, this.reader.name);
    return { reader: this.reader, offset, length: entry.compressedSize };
  }

  private headerWindow: { start: number; bytes: Uint8Array } | null = null;

  /**
   * The 30 fixed bytes of a local header, through a 64 KiB window: the records of a checkpoint
   * with many small tensors sit next to each other, so one read serves hundreds of headers (one
   * read each would be 100,000 reads for a 100,000-tensor file).
   */
  private localHeader(offset: number): DataView {
    let w = this.headerWindow;
    if (!w || offset < w.start || offset + 30 > w.start + w.bytes.length) {
      const n = Math.min(HEADER_WINDOW, this.reader.size - offset);
      w = this.headerWindow = { start: offset, bytes: this.reader.read(offset, Math.max(n, 30)) };
    }
    return new DataView(w.bytes.buffer, w.bytes.byteOffset + (offset - w.start), 30);
  }

  /** Reads a whole record into memory (small records only: pickles, version files). */
  readEntry(entry: ZipEntry, maxBytes = MAX_RECORD_BYTES): Uint8Array {
    if (entry.uncompressedSize > maxBytes)
      fail(
        'too-large',
        `${this.reader.name}: record ${entry.name} declares ${entry.uncompressedSize} bytes, more than the ${maxBytes} allowed for it`,
        this.reader.name,
      );
    const range = this.dataRange(entry);
    const raw = this.reader.read(range.offset, range.length);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      try {
        const out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(entry.uncompressedSize, 1) });
        if (out.length !== entry.uncompressedSize) throw new Error('size');
        return out;
      } catch {
        fail('corrupt-zip', `${this.reader.name}: record ${entry.name} does not inflate to its declared size`, this.reader.name);
      }
    }
    fail(
      'unsupported',
      `${this.reader.name}: record ${entry.name} uses zip compression method ${entry.method}; only stored and deflate are supported`,
      this.reader.name,
    );
  }

  /**
   * Reads a pickle record. torch.save stores them uncompressed; a deflated one may inflate to at
   * most `MAX_PICKLE_INFLATION` times its compressed size (above a 16 MiB floor), so a small
   * archive cannot make the reader hold gigabytes (a zip bomb: deflate reaches 1032:1).
   */
  readPickleRecord(entry: ZipEntry): Uint8Array {
    if (entry.method !== 0 && entry.uncompressedSize > Math.max(MIN_PICKLE_BOUND, entry.compressedSize * MAX_PICKLE_INFLATION)) {
      const ratio = Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize));
      fail(
        'too-large',
        `${this.reader.name}: record ${entry.name} would inflate from ${entry.compressedSize} to ${entry.uncompressedSize} bytes (${ratio}:1); a pickle never compresses past ${MAX_PICKLE_INFLATION}:1, so this archive is a zip bomb or damaged`,
        this.reader.name,
      );
    }
    return this.readEntry(entry);
  }

  readText(name: string): string | undefined {
    const e = this.get(name);
    return e ? Buffer.from(this.readEntry(e, 1 << 20)).toString('utf8') : undefined;
  }

  /** Offset of the archive's first byte inside the file (non-zero when bytes were prepended). */
  get startOffset(): number {
    return this.shift;
  }
}

/** How much of an archive's end `ZipArchive.open` reads at once: torch's end records and a central directory of ~30 records. */
const TAIL_READ = 4096;

/**
 * The reads of an archive's end records and central directory, served from one read of the
 * bytes before the end record where they lie there (a torch file of a few tensors: one pread
 * instead of five); anything else is read on its own. Every byte is still read from the file.
 */
class TailReads {
  private readonly start: number;
  private bytes: Uint8Array | null = null;
  constructor(
    private readonly reader: RandomAccessReader,
    eocdAt: number,
  ) {
    this.start = Math.max(0, eocdAt + 22 - TAIL_READ);
  }
  read(offset: number, length: number): Uint8Array {
    const end = Math.min(this.reader.size, this.start + TAIL_READ);
    if (offset < this.start || offset + length > end) return this.reader.read(offset, length);
    this.bytes ??= this.reader.read(this.start, end - this.start);
    return this.bytes.subarray(offset - this.start, offset - this.start + length);
  }
}

function findEocd(reader: RandomAccessReader): number | null {
  if (reader.size < 22) return null;
  // The end record is 22 bytes plus a comment of up to 64 KiB. Writers such as torch leave no
  // comment, so the last 4 KiB are searched first (a batch opens every file twice); the scan runs
  // backwards either way, so the wider search finds the same record.
  for (const window of [4096, 22 + 0xffff]) {
    const tailLen = Math.min(reader.size, window);
    const start = reader.size - tailLen;
    const tail = reader.read(start, tailLen);
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail[i] === 0x50 && tail[i + 1] === 0x4b && tail[i + 2] === 0x05 && tail[i + 3] === 0x06) {
        const commentLen = tail[i + 20]! | (tail[i + 21]! << 8);
        if (i + 22 + commentLen <= tail.length) return start + i;
      }
    }
    if (tailLen === reader.size) break;
  }
  return null;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function safeNumber(v: bigint, name: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('corrupt-zip', `${name}: zip64 size or offset ${v} is impossible`, name);
  return Number(v);
}
