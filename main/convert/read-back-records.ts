import * as fs from 'node:fs';
import { MAX_RECORD_BYTES } from '../formats/zip/zip.ts';
import type { FileReader } from '../io/random-access.ts';
import { tailSha256Of } from '../io/tail-hash.ts';
import type { WrittenStorages } from './write-checkpoint.ts';

const LOCAL_HEADER = 0x04034b50;
const U32_MAX = 0xffffffff;
/** Local headers are read through a window of this size (as ZipArchive reads them). */
const HEADER_WINDOW = 64 << 10;
/**
 * After a record at least HEADER_WINDOW long, the next header is read through a window of this
 * size: one header, its name and its padding (a 256 KiB tensor's record otherwise cost a 64 KiB
 * read for ~100 bytes: 0.5 MiB read per 2 MiB file of eight of them). A run of small records
 * goes back to HEADER_WINDOW at its second header.
 */
const AFTER_LARGE_WINDOW = 4 << 10;
/** The window's bytes, reused by every read-back of this thread (a 64 KiB allocation per header read made garbage). */
let scratch: Buffer | null = null;

/** What the read-back needs of a written archive: data.pkl as read back and which storage records are in place. */
export interface RecordsReadBack {
  pickle: Uint8Array;
  /** by storage index: 1 where the record is stored, of the size written, at the offset written */
  inPlace: Uint8Array;
  /** the first name two records share (none here: the directory is the writer's, each name once) */
  shadowed: null;
}

/**
 * The records of an archive this writer has just written, read back without making an object per
 * central directory entry (ZipArchive's directory of a 500,000-record file is 73 MB of heap):
 *
 * - the archive's tail on disk (central directory and end records) has the length and SHA-256 of
 *   the one the writer made from its own columns (`WrittenStorages.archive`), so every name,
 *   offset, size and CRC-32 torch will look up is the one written, each name once;
 * - the local headers, walked from the start of the file one after another up to that directory,
 *   each say stored (method 0), a size and, for storage record `data/<i>`, the CRC-32 written, and
 *   their data starts where the writer put it; the first record is `<archive>/data.pkl`.
 *
 * Returns null when anything differs, or the writer's tail is not known: the caller then reads the
 * file with ZipArchive, whose checks name what is wrong.
 */
export function readOwnRecords(reader: FileReader, storages: WrittenStorages): RecordsReadBack | null {
  const archive = storages.archive;
  const fd = reader.descriptor;
  if (!archive || reader.size !== archive.bytes || tailSha256Of(fd, reader.size, archive.tail.bytes) !== archive.tail.sha256) return null;
  const directoryAt = archive.bytes - archive.tail.bytes;
  let window: Buffer = (scratch ??= Buffer.allocUnsafe(HEADER_WINDOW));
  let windowAt = 0;
  let windowLength = 0;
  /** the size of the record before the header read next */
  let lastSize = 0;
  /** Where in `window` the `n` bytes at `at` are (read into it if they are not), before the directory; -1 past it. */
  const bytesAt = (at: number, n: number): number => {
    if (at + n > directoryAt) return -1;
    if (at < windowAt || at + n > windowAt + windowLength) {
      const want = Math.min(Math.max(n, lastSize >= HEADER_WINDOW ? AFTER_LARGE_WINDOW : HEADER_WINDOW), directoryAt - at);
      if (want > window.length) window = scratch = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const k = fs.readSync(fd, window, got, want - got, at + got);
        if (k === 0) return -1; // the file is shorter than its size said: not what was written
        got += k;
      }
      windowAt = at;
      windowLength = want;
    }
    return at - windowAt;
  };
  const inPlace = new Uint8Array(storages.length);
  let dataFolder: Buffer | null = null;
  let pickle: { at: number; size: number } | null = null;
  let at = 0;
  while (at < directoryAt) {
    let h = bytesAt(at, 30);
    if (h < 0 || window.readUInt32LE(h) !== LOCAL_HEADER || window.readUInt16LE(h + 8) !== 0) return null;
    const crc = window.readUInt32LE(h + 14);
    let size = window.readUInt32LE(h + 22);
    const compressed = window.readUInt32LE(h + 18);
    const nameBytes = window.readUInt16LE(h + 26);
    const extraBytes = window.readUInt16LE(h + 28);
    h = bytesAt(at + 30, nameBytes + extraBytes); // the name and the extra field (the window may move)
    if (h < 0 || compressed !== size) return null;
    // zip64: both sizes in the extra field with id 1 (the writer writes them when a size or an offset passes 4 GiB)
    if (size === U32_MAX) {
      const extra = new DataView(window.buffer, window.byteOffset + h + nameBytes, extraBytes);
      let z64: number | null = null;
      for (let e = 0; e + 4 <= extraBytes; e += 4 + extra.getUint16(e + 2, true))
        if (extra.getUint16(e, true) === 1 && e + 20 <= extraBytes) {
          z64 = Number(extra.getBigUint64(e + 4, true));
          if (Number(extra.getBigUint64(e + 12, true)) !== z64) return null;
          break;
        }
      if (z64 === null) return null;
      size = z64;
    }
    const dataAt = at + 30 + nameBytes + extraBytes;
    if (dataFolder === null) {
      // the writer's first record
      const name = window.toString('utf8', h, h + nameBytes);
      if (!name.endsWith('/data.pkl') || name.indexOf('/') !== name.length - '/data.pkl'.length || size > MAX_RECORD_BYTES) return null;
      dataFolder = Buffer.from(`${name.slice(0, -'data.pkl'.length)}data/`, 'utf8');
      pickle = { at: dataAt, size };
    } else if (nameBytes > dataFolder.length && startsWith(window, h, dataFolder)) {
      const i = indexIn(window, h + dataFolder.length, h + nameBytes);
      if (i !== null && i < storages.length && size === storages.nbytes(i) && dataAt === storages.dataOffset(i) && crc === storages.crc32(i)) inPlace[i] = 1;
    }
    at = dataAt + size;
    lastSize = size;
  }
  if (at !== directoryAt || !pickle) return null;
  return { pickle: reader.read(pickle.at, pickle.size), inPlace, shadowed: null };
}

/**
 * `storageIndex` of the UTF-8 text `bytes[from, to)`, read from the bytes (no string per record of
 * a 500,000-record archive): a number written in decimal as `String` writes it, or null.
 */
function indexIn(bytes: Uint8Array, from: number, to: number): number | null {
  if (to - from > 16 || (bytes[from] === 0x30 && to - from > 1)) return null; // past 2^53, or a leading zero
  let n = 0;
  for (let j = from; j < to; j++) {
    const digit = bytes[j]! - 0x30;
    if (digit < 0 || digit > 9) return null;
    n = n * 10 + digit;
  }
  return Number.isSafeInteger(n) ? n : null;
}

/** Whether `bytes` holds `prefix` at `at` (compared here: Buffer.compare's call costs more for a few bytes). */
function startsWith(bytes: Uint8Array, at: number, prefix: Uint8Array): boolean {
  for (let j = 0; j < prefix.length; j++) if (bytes[at + j] !== prefix[j]) return false;
  return true;
}
