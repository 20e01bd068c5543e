import { createHash } from 'node:crypto';
import { doubled } from '../../io/doubled.ts';
import { crc32 } from '../../io/crc32.ts';
import { writeAll, writeAllv } from '../../io/write-all.ts';
import { fail } from '../../errors.ts';

/**
 * Writes a torch zip archive the way `torch.save` does (caffe2/serialize/inline_container.cc,
 * `PyTorchStreamWriter`): every record stored uncompressed under `<archive>/`, its data aligned
 * to 64 bytes by an `FB` extra field in the local header (`detail::getPadding`), CRC-32 in the
 * headers, zip64 records when a size or an offset passes 4 GiB. Records are written through
 * positioned writes on a file descriptor, so storage bytes can be streamed in.
 */
export const ALIGNMENT = 64;
const U32_MAX = 0xffffffff;
/** Size of the buffer that gathers small writes (see `gather`). */
const GATHER_BYTES = 4 << 20;
/**
 * Writes this large go straight to the file: copying them into the gather buffer first is one
 * more pass over their bytes, which costs more than the write call it saves. A large storage
 * streams in chunks of STREAM_CHUNK; a 256×256 float32 tensor (256 KiB, a batch of small files is
 * made of them) is one write. Only records smaller than this (headers, pickles, small tensors)
 * are gathered.
 */
const DIRECT_WRITE_BYTES = 64 << 10;
/** The central directory is made and written in pieces of this size (see `finish`). */
const CD_PIECE_BYTES = 1 << 20;
/**
 * The gather buffer of the thread's last finished writer, for the next one: a batch of small
 * files otherwise allocates 4 MiB per file, whose external memory sets off a garbage collection
 * every few files and whose fresh pages fault in as they are filled.
 */
let spareGather: Buffer | null = null;

/**
 * The records written so far, in columns: name (inside the archive folder, as UTF-8 bytes one
 * after another), CRC-32, size and offset. An object per record (and boxed offsets and CRCs) was
 * ~110 bytes each of a 500,000-record archive, and a string per name another 32, all alive until
 * `finish`.
 */
class WrittenEntries {
  private count = 0;
  /** name i is `names[nameEnds[i - 1] ?? 0 .. nameEnds[i]]` */
  names = Buffer.allocUnsafe(16 << 10);
  nameEnds = new Float64Array(1024);
  crcs = new Uint32Array(1024);
  sizes = new Float64Array(1024);
  offsets = new Float64Array(1024);
  get length(): number {
    return this.count;
  }
  push(name: string, crc: number, size: number, offset: number): void {
    const i = this.count++;
    if (i === this.crcs.length) {
      this.nameEnds = doubled(this.nameEnds);
      this.crcs = doubled(this.crcs);
      this.sizes = doubled(this.sizes);
      this.offsets = doubled(this.offsets);
    }
    const at = i ? this.nameEnds[i - 1]! : 0;
    if (at + 3 * name.length > this.names.length) {
      const more = Buffer.allocUnsafe(Math.max(2 * this.names.length, at + 3 * name.length));
      this.names.copy(more, 0, 0, at);
      this.names = more;
    }
    this.nameEnds[i] = at + writeName(this.names, name, at);
    this.crcs[i] = crc;
    this.sizes[i] = size;
    this.offsets[i] = offset;
  }
}

/**
 * Writes `name` as UTF-8 at `at` of `buf` (which has room for 3 bytes per UTF-16 unit); returns
 * the bytes written. An ASCII name (every name torch and this writer make: `data/123`) is copied
 * a character at a time: for a name of a few characters that is cheaper than Buffer.write's call
 * into C++, made twice per record.
 */
function writeName(buf: Buffer, name: string, at: number): number {
  for (let j = 0; j < name.length; j++) {
    const c = name.charCodeAt(j);
    if (c >= 0x80) return buf.write(name, at, 'utf8');
    buf[at + j] = c;
  }
  return name.length;
}

export class TorchZipWriter {
  private pos: number;
  private readonly entries = new WrittenEntries();
  private readonly prefix: string;
  private readonly prefixBytes: Buffer;
  /**
   * The archive's tail (central directory and end records): its length and SHA-256, set by
   * `finish`. It lists every record's name, offset, size and CRC-32, so equal tails mean equal
   * archives for files whose records were each verified: a cheap fingerprint of the whole file.
   */
  tail: { bytes: number; sha256: string } | null = null;
  /** gathered bytes not yet in the file, and where they go */
  private gathered: Buffer | null = null;
  private gatheredAt = 0;
  private gatheredLen = 0;
  /**
   * With `gather`, writes smaller than DIRECT_WRITE_BYTES are collected and written together:
   * a 100,000-tensor checkpoint is otherwise 300,000 write calls (header, data, CRC patch per
   * record). Bytes are then in the file only once `inFile` says so (the caller defers reading
   * them back until then); `finish` writes everything.
   */
  constructor(
    private readonly fd: number,
    archiveName: string,
    startOffset = 0,
    gather = false,
  ) {
    this.prefix = archiveName + '/';
    this.prefixBytes = Buffer.from(this.prefix, 'utf8');
    this.pos = startOffset;
    if (gather) {
      this.gathered = spareGather ?? Buffer.allocUnsafe(GATHER_BYTES);
      spareGather = null;
    }
  }

  /** Whether every byte before `end` has been written to the file (not just gathered). */
  inFile(end: number): boolean {
    return this.gatheredLen === 0 || end <= this.gatheredAt;
  }

  get bytesWritten(): number {
    return this.pos;
  }

  /** A small record from memory. */
  addRecord(name: string, data: Uint8Array): void {
    this.addStreamed(name, data.length, (write) => write(data));
  }

  /**
   * A record whose bytes come in chunks: `fill` must call `write` with exactly `size` bytes in
   * total. The CRC is computed as the bytes pass and patched into the local header afterwards.
   * With `knownCrc` no CRC is computed here: a number is the CRC another archive recorded for the
   * same bytes, a function gives it once `fill` is done (an assembled tensor's CRC combined from
   * its pieces' CRCs, taken as they were read); verification re-reads the bytes and checks them
   * against it. Returns the record's CRC-32 and where its data starts.
   */
  addStreamed(
    name: string,
    size: number,
    fill: (write: (chunk: Uint8Array) => void) => void,
    knownCrc?: number | (() => number),
  ): { crc: number; dataOffset: number } {
    const headerAt = this.pos;
    const dataOffset = this.writeLocalHeader(name, size, headerAt);
    let at = dataOffset;
    let crc = 0;
    let written = 0;
    // The CRC set in the header while it is still gathered, before the data is written: header
    // and data then go to the file in one call (see `writeAt`), not three (header, data, patch).
    let patched = false;
    if (typeof knownCrc === 'number') patched = this.patchGathered(headerAt, knownCrc);
    fill((chunk) => {
      if (written + chunk.length > size) throw new Error(`record ${name} got more than its ${size} bytes`);
      if (knownCrc === undefined) {
        crc = crc32(chunk, crc);
        if (written === 0 && chunk.length === size) patched = this.patchGathered(headerAt, crc); // the record in one chunk
      }
      this.writeAt(chunk, at);
      at += chunk.length;
      written += chunk.length;
    });
    if (written !== size) throw new Error(`record ${name} got ${written} of its ${size} bytes`);
    if (knownCrc !== undefined) crc = typeof knownCrc === 'number' ? knownCrc : knownCrc();
    if (!patched) this.patchCrc(headerAt, crc);
    this.pos = at;
    this.entries.push(name, crc >>> 0, size, headerAt);
    return { crc: crc >>> 0, dataOffset };
  }

  /**
   * A record whose bytes are `data[from, to)`: `addStreamed` of them in one write, without the
   * two callbacks a record of a 500,000-record archive otherwise makes.
   */
  addBytes(name: string, data: Uint8Array, from: number, to: number, knownCrc?: number | (() => number)): { crc: number; dataOffset: number } {
    const size = to - from;
    const headerAt = this.pos;
    const dataOffset = this.writeLocalHeader(name, size, headerAt);
    const chunk = data.subarray(from, to);
    const crc = (knownCrc === undefined ? crc32(chunk) : typeof knownCrc === 'number' ? knownCrc : knownCrc()) >>> 0;
    const patched = this.patchGathered(headerAt, crc); // before the data: one write of both (see addStreamed)
    this.writeAt(chunk, dataOffset);
    if (!patched) this.patchCrc(headerAt, crc);
    this.pos = dataOffset + size;
    this.entries.push(name, crc, size, headerAt);
    return { crc, dataOffset };
  }

  /**
   * A record whose size is known only once `fill` is done (a pickle written as it is made): the
   * same bytes as `addStreamed` with that size, its sizes patched into the local header with the
   * CRC. Such a record must stay under 4 GiB and start before 4 GiB (no zip64 header fields,
   * whose presence would have to be known before its first byte).
   */
  addUnsized(name: string, fill: (write: (chunk: Uint8Array) => void) => void): { crc: number; size: number; dataOffset: number } {
    const headerAt = this.pos;
    if (headerAt >= U32_MAX) throw new Error(`record ${name} would start past 4 GiB`);
    const dataOffset = this.writeLocalHeader(name, 0, headerAt);
    let at = dataOffset;
    let crc = 0;
    fill((chunk) => {
      if (at - dataOffset + chunk.length >= U32_MAX) fail('too-large', `${name} would be 4 GiB or more, which this writer does not write`);
      crc = crc32(chunk, crc);
      this.writeAt(chunk, at);
      at += chunk.length;
    });
    const size = at - dataOffset;
    const patch = this.scratch(12);
    patch.writeUInt32LE(crc >>> 0, 0);
    patch.writeUInt32LE(size, 4);
    patch.writeUInt32LE(size, 8);
    this.writeAt(patch, headerAt + 14);
    this.pos = at;
    this.entries.push(name, crc >>> 0, size, headerAt);
    return { crc: crc >>> 0, size, dataOffset };
  }

  /**
   * Writes record `name`'s local header at `headerAt`; returns where its data starts. The header
   * is made in place in the gather buffer where it goes on at its end (or starts it), else in the scratch buffer and written: a
   * 500,000-record archive is otherwise 500,000 buffer views made and copied.
   */
  private writeLocalHeader(name: string, size: number, headerAt: number): number {
    const zip64 = size >= U32_MAX || headerAt >= U32_MAX;
    const z64Extra = zip64 ? 4 + 16 : 0;
    const most = 30 + this.prefixBytes.length + 3 * name.length + z64Extra + 4 + ALIGNMENT;
    const g = this.gathered;
    const inPlace = g !== null && (this.gatheredLen === 0 || headerAt === this.gatheredAt + this.gatheredLen) && this.gatheredLen + most <= g.length;
    if (inPlace && this.gatheredLen === 0) this.gatheredAt = headerAt;
    const header = inPlace ? g : this.scratch(most);
    const h = inPlace ? this.gatheredLen : 0;
    header.set(this.prefixBytes, h + 30);
    const nameBytes = this.prefixBytes.length + writeName(header, name, h + 30 + this.prefixBytes.length);
    // Padding so the data starts on a 64-byte boundary (getPadding counts the 4-byte FB header).
    const start = headerAt + 30 + nameBytes + z64Extra + 4;
    const padding = (ALIGNMENT - (start % ALIGNMENT)) % ALIGNMENT;
    const extraLen = z64Extra + 4 + padding;
    header.writeUInt32LE(0x04034b50, h);
    header.writeUInt16LE(zip64 ? 45 : 20, h + 4); // version needed
    header.writeUInt16LE(0x0800, h + 6); // UTF-8 names
    header.writeUInt16LE(0, h + 8); // stored
    header.writeUInt32LE(0, h + 10); // time, date: torch writes 0 (1980-00-00)
    header.writeUInt32LE(0, h + 14); // crc, patched below
    header.writeUInt32LE(zip64 ? U32_MAX : size, h + 18);
    header.writeUInt32LE(zip64 ? U32_MAX : size, h + 22);
    header.writeUInt16LE(nameBytes, h + 26);
    header.writeUInt16LE(extraLen, h + 28);
    let e = h + 30 + nameBytes;
    if (zip64) {
      header.writeUInt16LE(1, e);
      header.writeUInt16LE(16, e + 2);
      header.writeBigUInt64LE(BigInt(size), e + 4);
      header.writeBigUInt64LE(BigInt(size), e + 12);
      e += z64Extra;
    }
    header[e] = 0x46; // 'FB'
    header[e + 1] = 0x42;
    header.writeUInt16LE(padding, e + 2);
    header.fill(0x5a, e + 4, e + 4 + padding); // 'Z'
    const length = 30 + nameBytes + extraLen;
    if (inPlace) this.gatheredLen += length;
    else this.writeAt(header.subarray(0, length), headerAt);
    return headerAt + length;
  }

  /** Sets the CRC-32 of the record whose local header is at `headerAt` where that header is still gathered; says whether it was. */
  private patchGathered(headerAt: number, crc: number): boolean {
    const g = this.gathered;
    if (g === null || !this.gatheredLen || headerAt < this.gatheredAt || headerAt + 18 > this.gatheredAt + this.gatheredLen) return false;
    g.writeUInt32LE(crc >>> 0, headerAt - this.gatheredAt + 14);
    return true;
  }

  /** Sets the CRC-32 of the record whose local header is at `headerAt` (`writeAt` sets it in place where that header is still gathered). */
  private patchCrc(headerAt: number, crc: number): void {
    const crcBuf = this.scratch(4);
    crcBuf.writeUInt32LE(crc >>> 0);
    this.writeAt(crcBuf, headerAt + 14);
  }

  /** Writes `version`, the central directory and the end records. Returns the archive's size. */
  finish(version = '3\n'): number {
    this.addRecord('version', Buffer.from(version));
    const cdStart = this.pos;
    const en = this.entries;
    const extraOf = (i: number): number => {
      const needSize = en.sizes[i]! >= U32_MAX;
      const needOff = en.offsets[i]! >= U32_MAX;
      return needSize || needOff ? 4 + (needSize ? 16 : 0) + (needOff ? 8 : 0) : 0;
    };
    // The directory is written a piece at a time, each entry made in place in the piece (a
    // 500,000-record directory is 29 MB) and hashed as it goes.
    let cdLength = 0;
    const prefixBytes = this.prefixBytes.length;
    for (let i = 0; i < en.length; i++) cdLength += 46 + prefixBytes + en.nameEnds[i]! - (i ? en.nameEnds[i - 1]! : 0) + extraOf(i);
    const hash = createHash('sha256');
    const piece = Buffer.allocUnsafe(Math.min(cdLength, CD_PIECE_BYTES));
    let pieceAt = cdStart;
    let hAt = 0;
    const writePiece = (): void => {
      const done = piece.subarray(0, hAt);
      hash.update(done);
      this.writeAt(done, pieceAt);
      pieceAt += hAt;
      hAt = 0;
    };
    for (let i = 0; i < en.length; i++) {
      const size = en.sizes[i]!;
      const offset = en.offsets[i]!;
      const nameFrom = i ? en.nameEnds[i - 1]! : 0;
      const nameTo = en.nameEnds[i]!;
      const nameBytes = prefixBytes + nameTo - nameFrom;
      const needSize = size >= U32_MAX;
      const needOff = offset >= U32_MAX;
      const extraLen = extraOf(i);
      // an entry is at most 46 + 65,535 + 28 bytes: a piece holds one whole
      if (hAt + 46 + nameBytes + extraLen > piece.length) writePiece();
      // made in place in the piece at `h` (no view of the piece or of the name per entry)
      const h = hAt;
      hAt += 46 + nameBytes + extraLen;
      piece.writeUInt32LE(0x02014b50, h);
      piece.writeUInt16LE(extraLen ? 45 : 20, h + 4); // version made by
      piece.writeUInt16LE(extraLen ? 45 : 20, h + 6); // version needed
      piece.writeUInt16LE(0x0800, h + 8);
      piece.writeUInt16LE(0, h + 10);
      piece.writeUInt32LE(0, h + 12);
      piece.writeUInt32LE(en.crcs[i]!, h + 16);
      piece.writeUInt32LE(needSize ? U32_MAX : size, h + 20);
      piece.writeUInt32LE(needSize ? U32_MAX : size, h + 24);
      piece.writeUInt16LE(nameBytes, h + 28);
      piece.writeUInt16LE(extraLen, h + 30);
      piece.fill(0, h + 32, h + 42); // comment length, disk number, internal and external attributes (the piece is reused)
      piece.writeUInt32LE(needOff ? U32_MAX : offset, h + 42);
      piece.set(this.prefixBytes, h + 46);
      en.names.copy(piece, h + 46 + prefixBytes, nameFrom, nameTo);
      if (extraLen) {
        let e = h + 46 + nameBytes;
        piece.writeUInt16LE(1, e);
        piece.writeUInt16LE(extraLen - 4, e + 2);
        e += 4;
        if (needSize) {
          piece.writeBigUInt64LE(BigInt(size), e);
          piece.writeBigUInt64LE(BigInt(size), e + 8);
          e += 16;
        }
        if (needOff) piece.writeBigUInt64LE(BigInt(offset), e);
      }
    }
    writePiece();
    const cdEnd = cdStart + cdLength;
    const count = this.entries.length;
    const needZip64 = count >= 0xffff || cdStart >= U32_MAX || cdLength >= U32_MAX;
    let at = cdEnd;
    let zip64End: Buffer | undefined;
    if (needZip64) {
      const r = (zip64End = Buffer.alloc(56 + 20));
      r.writeUInt32LE(0x06064b50, 0);
      r.writeBigUInt64LE(44n, 4); // size of the rest of the record
      r.writeUInt16LE(45, 12);
      r.writeUInt16LE(45, 14);
      r.writeBigUInt64LE(BigInt(count), 24);
      r.writeBigUInt64LE(BigInt(count), 32);
      r.writeBigUInt64LE(BigInt(cdLength), 40);
      r.writeBigUInt64LE(BigInt(cdStart), 48);
      r.writeUInt32LE(0x07064b50, 56); // locator
      r.writeBigUInt64LE(BigInt(cdEnd), 64);
      r.writeUInt32LE(1, 72);
      this.writeAt(r, at);
      at += r.length;
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(Math.min(count, 0xffff), 8);
    eocd.writeUInt16LE(Math.min(count, 0xffff), 10);
    eocd.writeUInt32LE(Math.min(cdLength, U32_MAX), 12);
    eocd.writeUInt32LE(Math.min(cdStart, U32_MAX), 16);
    this.writeAt(eocd, at);
    this.flush();
    if (this.gathered) spareGather = this.gathered; // an unfinished writer (an error) keeps its buffer to itself
    this.gathered = null;
    this.pos = at + eocd.length;
    if (needZip64) hash.update(zip64End!);
    this.tail = { bytes: this.pos - cdStart, sha256: hash.update(eocd).digest('hex') };
    return this.pos;
  }

  private scratchBuf = Buffer.allocUnsafe(1024);
  /** `n` bytes of the reused scratch buffer, to be filled whole and written at once. */
  private scratch(n: number): Buffer {
    if (this.scratchBuf.length < n) this.scratchBuf = Buffer.allocUnsafe(n);
    return this.scratchBuf.subarray(0, n);
  }

  private writeAt(buf: Uint8Array, position: number): void {
    const g = this.gathered;
    if (!g) return writeAll(this.fd, buf, position);
    const from = this.gatheredAt;
    const to = from + this.gatheredLen;
    if (this.gatheredLen && position >= from && position + buf.length <= to) {
      g.set(buf, position - from); // a CRC patch of a header still gathered
      return;
    }
    if (buf.length >= DIRECT_WRITE_BYTES) {
      if (this.gatheredLen && position === to) {
        // the gathered bytes (a record's header) and this record's data, which follows them: one call
        writeAllv(this.fd, [g.subarray(0, this.gatheredLen), buf], from);
        this.gatheredLen = 0;
        return;
      }
      this.flush();
      return writeAll(this.fd, buf, position);
    }
    if (this.gatheredLen && position === to && this.gatheredLen + buf.length <= g.length) {
      g.set(buf, this.gatheredLen);
      this.gatheredLen += buf.length;
      return;
    }
    this.flush();
    g.set(buf, 0);
    this.gatheredAt = position;
    this.gatheredLen = buf.length;
  }

  /** Writes the gathered bytes. */
  flush(): void {
    if (!this.gatheredLen) return;
    writeAll(this.fd, this.gathered!.subarray(0, this.gatheredLen), this.gatheredAt);
    this.gatheredLen = 0;
  }
}
