import * as zlib from 'node:zlib';
import { PickleInput } from '../../formats/pickle/pickle-input.ts';
import { scanPickle } from '../../formats/pickle/scan/scan-pickle.ts';
import type { PrescannedPickles } from '../../formats/torch/torch-zip.ts';
import { BufferReader, type RandomAccessReader } from '../../io/random-access.ts';
import { looksLikeOnnx } from '../../formats/onnx/onnx-reading.ts';
import { looksLikeSafetensors } from '../../formats/safetensors/safetensors.ts';
import { LEGACY_MAGIC, looksLikeTar, readTarMembers } from '../../formats/torch/torch-legacy.ts';
import { ZipArchive, type ZipEntry } from '../../formats/zip/zip.ts';
import { fail } from '../../errors.ts';
import type { FileSites, PickleSite, Reach } from './pickle-sites.ts';
import { tarMemberSites } from './tar-members.ts';

const LOCAL_HEADER = [0x50, 0x4b, 0x03, 0x04];
const NESTING_LIMIT = 3;
const MAX_TRAILING_PICKLES = 64;
/** Names of the pickles torch.load reads in order from a legacy (non-zip) file (torch/serialization.py `_legacy_load`). */
const LEGACY_PICKLES = ['magic number', 'protocol version', 'sys_info', 'object', 'storage keys'];

/**
 * Finds every pickle of a file the way torch.load would reach it, and the ones it would not.
 * torch/serialization.py `load`: a file is a zip only when its first bytes are the local-header
 * magic (`_is_zipfile`); otherwise `_legacy_load` tries the tar format, then unpickles from the
 * front: the magic number pickle first, whatever it holds.
 */
export function findPickleSites(reader: RandomAccessReader, depth = 0, prescanned?: PrescannedPickles): FileSites {
  if (reader.size === 0) return { sites: [], notes: ['the file is empty'], containerRefusal: 'the file is empty', noPickle: true };
  const head = reader.read(0, Math.min(reader.size, 64));
  if (Buffer.from(head).toString('latin1').startsWith('version https://git-lfs.github.com/spec/')) {
    return { sites: [], notes: ['a Git LFS pointer, not the file itself'], containerRefusal: 'a Git LFS pointer', noPickle: true };
  }
  if (LOCAL_HEADER.every((b, i) => head[i] === b)) return zipSites(reader, true, depth, prescanned);
  if (Buffer.from(head.subarray(0, 6)).toString('latin1') === '7z\xbc\xaf\x27\x1c')
    fail('unsupported', `${reader.name}: a 7z archive: its members cannot be scanned here; extract it and scan the files`, reader.name);
  if (looksLikeTar(reader)) return tarSites(reader, depth);
  if (looksLikeSafetensors(reader)) {
    const named = reader.name.endsWith('.safetensors');
    return {
      sites: [],
      notes: [],
      containerRefusal: named
        ? 'torch 1.13 reads a .safetensors path as a pickle and fails'
        : 'a safetensors file not named .safetensors: torch.load unpickles it and fails',
      noPickle: true,
      ...(named ? { loadsWithoutPickle: ['2.13'] } : {}),
    };
  }
  // an ONNX graph is protobuf (0x08 is no pickle opcode): nothing in it is unpickled by anyone
  if (looksLikeOnnx(head)) return { sites: [], notes: [], containerRefusal: 'an ONNX graph (torch.onnx.export), not a torch.save file', noPickle: true };
  if (Buffer.from(head.subarray(0, 6)).toString('latin1') === '\x93NUMPY') return npySites(reader, 'numpy.load(allow_pickle=True)', 'loader', 'array');
  const found = streamSites(reader);
  if (ZipArchive.looksLikeZip(reader) && depth < NESTING_LIMIT) {
    const zipped = zipSites(reader, false, depth);
    found.sites.push(...zipped.sites);
    found.notes.push(
      'a zip archive is appended after the front bytes (a polyglot): torch.load unpickles the front, zip readers see the archive',
      ...zipped.notes,
    );
    if (!zipped.noPickle) delete found.noPickle;
  }
  return found;
}

/** A legacy torch file (five pickles), or a bare pickle and whatever pickles follow it. */
function streamSites(reader: RandomAccessReader): FileSites {
  const input = new PickleInput(reader);
  const sites: PickleSite[] = [];
  const notes: string[] = [];
  const first = scanPickle(input);
  if (first.error && first.end - first.start <= 1 && first.findings.length === 0) {
    return {
      sites: [],
      notes: ['not a pickle, zip, tar, safetensors or npy file'],
      containerRefusal: 'not a torch.save file',
      noPickle: true,
      unrecognised: true,
    };
  }
  sites.push({ where: 'pickle at byte 0', reach: 'torch.load', scan: first });
  const magic = first.value?.t === 'int' ? BigInt(first.value.v) : undefined;
  if (magic === LEGACY_MAGIC && !first.error) {
    sites[0]!.where = 'legacy pickle 1 (magic number)';
    for (let i = 1; i < LEGACY_PICKLES.length && input.pos < reader.size; i++) {
      const s = scanPickle(input);
      sites.push({ where: `legacy pickle ${i + 1} (${LEGACY_PICKLES[i]}) at byte ${s.start}`, reach: 'torch.load', scan: s });
      if (s.error) break;
    }
    notes.push('legacy torch.save format: its five pickles are scanned; the storage bytes after them are tensor data');
    return { sites, notes };
  }
  const containerRefusal = 'a bare pickle, not torch.save output: torch.load unpickles it, then fails with "Invalid magic number"';
  notes.push('a plain pickle: torch.load (weights_only=False) and pickle.load run it as a whole');
  for (let n = 0; n < MAX_TRAILING_PICKLES && !first.error && input.pos < reader.size; n++) {
    const at = input.pos;
    const s = scanPickle(input);
    if (s.error && s.end - s.start <= 1 && s.findings.length === 0) {
      notes.push(`${reader.size - at} bytes after the pickle at byte ${at} are not a pickle`);
      break;
    }
    sites.push({ where: `trailing pickle at byte ${at}`, reach: 'unreached', by: 'a second pickle.load on the same stream', scan: s });
    if (s.error) break;
  }
  return { sites, notes, containerRefusal };
}

/** The old tar format (`torch.save` before 0.4 with `tarfile`): members `storages`, `tensors`, `pickle`. */
function tarSites(reader: RandomAccessReader, depth: number): FileSites {
  const members = readTarMembers(reader);
  const sites: PickleSite[] = [];
  const notes: string[] = [];
  for (const [name, m] of members) {
    const torchMember = name === 'storages' || name === 'tensors' || name === 'pickle';
    if (torchMember) {
      sites.push(...tarMemberSites(reader, m, notes));
    } else {
      sites.push(...nestedSites(reader, m.offset, m.size, `tar member ${name}`, depth, notes));
    }
  }
  notes.push('old tar format: torch.load(weights_only=False) reads its members storages, tensors and pickle');
  // torch ≥ 2.x `legacy_load` raises "Cannot use weights_only=True with files saved in the legacy
  // .tar format"; 1.13's runs every member's pickles through its weights-only unpickler instead
  return { sites, notes, containerRefusal: 'the legacy .tar format: torch.load(weights_only=True) refuses it', containerRefusalIn: ['2.13'] };
}

/** A `.npy` whose dtype is object holds a pickle after its header (numpy/lib/format.py `read_array`). */
function npySites(reader: RandomAccessReader, by: string, reach: Reach, where: string): FileSites {
  const major = reader.read(6, 1)[0]!;
  const lenBytes = major === 1 ? 2 : 4;
  const lb = reader.read(8, lenBytes);
  const headerLen = lenBytes === 2 ? lb[0]! | (lb[1]! << 8) : new DataView(lb.buffer, lb.byteOffset, 4).getUint32(0, true);
  const dataAt = 8 + lenBytes + headerLen;
  const header = Buffer.from(reader.read(8 + lenBytes, Math.min(headerLen, reader.size - 8 - lenBytes))).toString('latin1');
  const refusal = 'a numpy file, not torch.save output';
  if (!/'descr'\s*:\s*'\|?O'/.test(header)) return { sites: [], notes: [], containerRefusal: refusal, noPickle: true };
  const s = scanPickle(new PickleInput(reader, Math.min(dataAt, reader.size)));
  return {
    sites: [{ where: `${where}: object array pickle`, reach, by, scan: s }],
    notes: [`an object array: only ${by} unpickles it`],
    containerRefusal: refusal,
  };
}

/** Bytes inside a container (zip entry, tar member): a pickle, npy, zip or tar of their own. */
function nestedSites(
  reader: RandomAccessReader,
  offset: number,
  size: number,
  where: string,
  depth: number,
  notes: string[],
  bytes?: Uint8Array,
): PickleSite[] {
  if (depth >= NESTING_LIMIT || size === 0) return [];
  const inner = bytes ? new BufferReader(bytes, `${reader.name}:${where}`) : sliceOf(reader, offset, size, where);
  const found = findPickleSites(inner, depth + 1);
  if (found.noPickle) return [];
  notes.push(...found.notes.map((n) => `${where}: ${n}`));
  return found.sites.map((s) => ({ ...s, where: `${where} → ${s.where}`, reach: 'unreached', by: s.by ?? 'a loader that opens the inner file' }));
}

function sliceOf(reader: RandomAccessReader, offset: number, size: number, where: string): RandomAccessReader {
  return { name: `${reader.name}:${where}`, size, read: (o, n) => reader.read(offset + o, Math.min(n, size - o)), close() {} };
}

/**
 * A zip's pickles. torch reads `<prefix>data.pkl`, the prefix being the first record's top folder
 * (caffe2/serialize/inline_container.cc, `PyTorchStreamReader::init`). A record name that occurs
 * twice resolves through miniz's binary search over its sorted directory (`getRecordID` →
 * `mz_zip_reader_locate_file`): torch 1.13 and 2.13 read the LAST of two same-named records
 * (measured on test/fixtures/security/evil/duplicate_data_pkl_*.pt), so that one is what
 * torch.load reaches; the others are scanned as unreached (zip tools may read them).
 */
function zipSites(reader: RandomAccessReader, torchReads: boolean, depth: number, prescanned?: PrescannedPickles): FileSites {
  const notes: string[] = [];
  let entries: ZipEntry[];
  /** the record a name opens: the last of that name, as torch reads it */
  let lastOf: (name: string) => ZipEntry | undefined;
  let read: (e: ZipEntry) => Uint8Array | undefined;
  /** the records before this one are each the last of their name: none is looked up */
  let firstHidden = 0;
  let containerRefusal: string | undefined;
  try {
    const zip = prescanned?.zip ? prescanned.zip.over(reader) : ZipArchive.open(reader);
    entries = zip.entries;
    lastOf = (name) => zip.get(name); // the archive's own index (100,000 records are not indexed twice)
    const hidden = zip.firstShadowed();
    firstHidden = hidden ? entries.indexOf(hidden) : entries.length;
    read = (e) => {
      try {
        return zip.readEntry(e, 1 << 28);
      } catch {
        return undefined;
      }
    };
  } catch {
    entries = localHeaders(reader);
    const byName = new Map<string, ZipEntry>();
    for (const e of entries) byName.set(e.name, e);
    lastOf = (name) => byName.get(name);
    read = (e) => readLocal(reader, e);
    containerRefusal = 'a zip without a readable central directory: torch refuses it';
    notes.push('the zip has no readable central directory; its records were found by their local headers');
  }
  const first = entries[0];
  const slash = first ? first.name.indexOf('/') : -1;
  const prefix = slash >= 0 ? first!.name.slice(0, slash + 1) : '';
  if (first && slash < 0 && torchReads)
    containerRefusal ??= 'a zip whose first record is not in a folder: torch refuses it ("file in archive is not in a subdirectory")';
  const torchScript = lastOf(`${prefix}constants.pkl`) !== undefined;
  if (torchScript) containerRefusal ??= 'a TorchScript archive: torch.load(weights_only=True) refuses it; torch.jit.load reads it';
  if (torchReads && lastOf(`${prefix}data.pkl`) === undefined) containerRefusal ??= 'a zip without data.pkl: torch.load refuses it';
  const sites: PickleSite[] = [];
  const [dataDir, hiddenDataDir, dataPkl] = [`${prefix}data/`, `${prefix}.data/`, `${prefix}data.pkl`];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.encrypted) {
      // The flag alone hides nothing from a reader that ignores it (miniz does): scan what is stored in the clear.
      const clear = e.method === 0 ? read(e) : undefined;
      if (!clear || !(looksLikePickleStart(clear) || /\.(debug_)?pkl$/.test(e.name)))
        fail('unsupported', `${reader.name}: zip record ${e.name} is encrypted: it cannot be scanned; decrypt the archive and scan its files`, reader.name);
      notes.push(`record ${e.name} is flagged encrypted but stored in the clear`);
    }
    const duplicate = i >= firstHidden && lastOf(e.name) !== e;
    if (duplicate) notes.push(`two records are named ${e.name}: torch reads the last; the earlier one is scanned as unreached`);
    if (e.name.startsWith(dataDir) || e.name.startsWith(hiddenDataDir) || e.name.endsWith('/')) {
      if (!e.name.endsWith('.pkl')) continue; // storage bytes, not pickles
    }
    const inTorch = torchReads && !containerRefusal && !duplicate && e.name === dataPkl;
    const pickleName = /\.(debug_)?pkl$/.test(e.name);
    const jit = torchReads && torchScript && !duplicate && e.name.startsWith(prefix) && pickleName;
    if (pickleName || inTorch) {
      // the reader walked this very record (same name, same local header) while unpickling it
      const done = inTorch ? prescanned?.get(e) : undefined;
      if (done) {
        sites.push({ where: e.name, reach: 'torch.load', scan: done });
        continue;
      }
      const bytes = read(e);
      if (!bytes) {
        notes.push(`record ${e.name} could not be read (damaged or compressed oddly)`);
        continue;
      }
      const s = scanPickle(PickleInput.fromBytes(bytes, `${reader.name}:${e.name}`));
      sites.push(
        inTorch
          ? { where: e.name, reach: 'torch.load', scan: s }
          : jit
            ? { where: e.name, reach: 'loader', by: 'torch.jit.load', scan: s }
            : { where: e.name, reach: 'unreached', by: 'a loader that opens this record', scan: s },
      );
      continue;
    }
    if (e.uncompressedSize > 1 << 28) continue;
    const bytes = read(e);
    if (!bytes || bytes.length === 0) continue;
    if (e.name.endsWith('.npy') && bytes.length > 10 && Buffer.from(bytes.subarray(0, 6)).toString('latin1') === '\x93NUMPY') {
      const npy = npySites(new BufferReader(bytes, `${reader.name}:${e.name}`), 'numpy.load(allow_pickle=True)', torchReads ? 'unreached' : 'loader', e.name);
      sites.push(...npy.sites);
      notes.push(...npy.notes.map((n) => `${e.name}: ${n}`));
      continue;
    }
    if (
      looksLikePickleStart(bytes) ||
      LOCAL_HEADER.every((b, i) => bytes[i] === b) ||
      (bytes.length > 262 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar')
    ) {
      sites.push(...nestedSites(reader, 0, bytes.length, `zip record ${e.name}`, depth, notes, bytes));
    }
  }
  // torch 1.13's `load` dispatches TorchScript to torch.jit.load before looking at weights_only (torch/serialization.py).
  return {
    sites,
    notes,
    ...(containerRefusal ? { containerRefusal } : {}),
    ...(sites.length === 0 ? { noPickle: true } : {}),
    ...(torchScript && torchReads ? { jitLoadsIn: ['1.13'] } : {}),
  };
}

function looksLikePickleStart(b: Uint8Array): boolean {
  return b[0] === 0x80 && b[1]! >= 2 && b[1]! <= 5;
}

/** Records found by walking local headers from the front (for a zip whose central directory is missing). */
function localHeaders(reader: RandomAccessReader): ZipEntry[] {
  const out: ZipEntry[] = [];
  let at = 0;
  while (at + 30 <= reader.size && out.length < 100_000) {
    const h = reader.read(at, 30);
    const dv = new DataView(h.buffer, h.byteOffset, 30);
    if (dv.getUint32(0, true) !== 0x04034b50) break;
    const flags = dv.getUint16(6, true);
    const size = dv.getUint32(18, true);
    const nameLen = dv.getUint16(26, true);
    const extraLen = dv.getUint16(28, true);
    const name = Buffer.from(reader.read(at + 30, Math.min(nameLen, reader.size - at - 30))).toString('utf8');
    out.push({
      name,
      method: dv.getUint16(8, true),
      crc32: dv.getUint32(14, true),
      compressedSize: size,
      uncompressedSize: dv.getUint32(22, true),
      localHeaderOffset: at,
      ...(flags & 1 ? { encrypted: true } : {}),
    });
    if (flags & 8) break; // sizes follow the data: the next header cannot be found without inflating
    at += 30 + nameLen + extraLen + size;
  }
  return out;
}

function readLocal(reader: RandomAccessReader, e: ZipEntry): Uint8Array | undefined {
  const h = reader.read(e.localHeaderOffset, 30);
  const dv = new DataView(h.buffer, h.byteOffset, 30);
  const at = e.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
  const raw = reader.read(at, Math.max(0, Math.min(e.compressedSize, reader.size - at)));
  if (e.method === 0) return raw;
  try {
    return e.method === 8 ? zlib.inflateRawSync(raw, { maxOutputLength: 1 << 28 }) : undefined;
  } catch {
    return undefined;
  }
}
