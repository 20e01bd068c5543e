import { MAX_RECORD_BYTES } from '../formats/zip/zip.ts';
import type { FileReader } from '../io/random-access.ts';
import { tailSha256 } from '../io/tail-hash.ts';
import { storageIndex } from './storage-read-back.ts';
import type { WrittenStorages } from './write-checkpoint.ts';

const LOCAL_HEADER = 0x04034b50;
const U32_MAX = 0xffffffff;
/** Local headers are read through a window of this size (as ZipArchive reads them). */
const HEADER_WINDOW = 64 << 10;

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
  if (!archive || reader.size !== archive.bytes || tailSha256(reader.name, archive.tail.bytes) !== archive.tail.sha256) return null;
  const directoryAt = archive.bytes - archive.tail.bytes;
  let window: Uint8Array = new Uint8Array(0);
  let windowAt = 0;
  /** `n` bytes at `at`, before the directory, or null */
  const bytesAt = (at: number, n: number): DataView | null => {
    if (at + n > directoryAt) return null;
    if (at < windowAt || at + n > windowAt + window.length) {
      window = reader.read(at, Math.min(Math.max(n, HEADER_WINDOW), directoryAt - at));
      windowAt = at;
    }
    return new DataView(window.buffer, window.byteOffset + (at - windowAt), n);
  };
  const inPlace = new Uint8Array(storages.length);
  let dataFolder: string | null = null;
  let pickle: { at: number; size: number } | null = null;
  let at = 0;
  while (at < directoryAt) {
    const h = bytesAt(at, 30);
    if (!h || h.getUint32(0, true) !== LOCAL_HEADER || h.getUint16(8, true) !== 0) return null;
    const crc = h.getUint32(14, true);
    let size = h.getUint32(22, true);
    const compressed = h.getUint32(18, true);
    const nameBytes = h.getUint16(26, true);
    const extraBytes = h.getUint16(28, true);
    const rest = bytesAt(at + 30, nameBytes + extraBytes);
    if (!rest || compressed !== size) return null;
    const name = Buffer.from(rest.buffer, rest.byteOffset, nameBytes).toString('utf8');
    // zip64: both sizes in the extra field with id 1 (the writer writes them when a size or an offset passes 4 GiB)
    if (size === U32_MAX) {
      const extra = new DataView(rest.buffer, rest.byteOffset + nameBytes, extraBytes);
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
      if (!name.endsWith('/data.pkl') || name.indexOf('/') !== name.length - '/data.pkl'.length || size > MAX_RECORD_BYTES) return null;
      dataFolder = name.slice(0, -'data.pkl'.length) + 'data/';
      pickle = { at: dataAt, size };
    } else if (name.startsWith(dataFolder)) {
      const i = storageIndex(name.slice(dataFolder.length));
      if (i !== null && i < storages.length && size === storages.nbytes(i) && dataAt === storages.dataOffset(i) && crc === storages.crc32(i)) inPlace[i] = 1;
    }
    at = dataAt + size;
  }
  if (at !== directoryAt || !pickle) return null;
  return { pickle: reader.read(pickle.at, pickle.size), inPlace, shadowed: null };
}
