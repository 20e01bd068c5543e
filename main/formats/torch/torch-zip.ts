import { fail } from '../../errors.ts';
import type { FormatReading, GlobalRef } from '../values/format-reading.ts';
import { PickleInput } from '../pickle/pickle-input.ts';
import { unpickle, type UnpickleResult } from '../pickle/unpickler.ts';
import type { PyValue } from '../values/python-values.ts';
import { BufferReader, type RandomAccessReader } from '../../io/random-access.ts';
import { decodeStorageId, torchPickleHooks, type StorageId } from './torch-pickle.ts';
import { TensorItemReader } from './fast-items.ts';
import { takeStorageSerial, TorchStorage, type ByteRange } from '../values/torch-values.ts';
import { inheritWithConstants, LOCATED_BY_ITSELF } from '../values/header-values.ts';
import type { DTypeInfo } from '../../../shared/dtypes.ts';
import { ZipArchive } from '../zip/zip.ts';
import { decimalKey } from '../zip/name-index.ts';
import { PickleScanner, type PickleScan } from '../pickle/scan/scan-pickle.ts';
import type { ZipEntry } from '../zip/zip.ts';

/**
 * The torch zip format (torch.save since 1.6, and torch.jit.save archives):
 * `<archive>/data.pkl` plus one record `<archive>/data/<key>` per storage, and small records
 * `version`, `byteorder`, `.format_version`, `.storage_alignment`, `.data/serialization_id`.
 * The archive name is the first path component of the first record, whatever it is
 * (caffe2/serialize/inline_container.cc, `PyTorchStreamReader::init`).
 */
export interface TorchArchive {
  zip: ZipArchive;
  /** `archive/` including the slash */
  prefix: string;
}

export function openTorchArchive(reader: RandomAccessReader): TorchArchive {
  return torchArchiveOf(ZipArchive.open(reader));
}

/** The torch archive inside an already parsed zip. */
export function torchArchiveOf(zip: ZipArchive): TorchArchive {
  const reader = zip.reader;
  const first = zip.entries[0];
  if (!first) fail('not-a-checkpoint', `${reader.name}: empty zip archive; torch archives hold at least data.pkl`, reader.name);
  const slash = first.name.indexOf('/');
  if (slash < 0) fail('not-a-checkpoint', `${reader.name}: zip archive without a top folder; this is not a torch archive`, reader.name);
  return { zip, prefix: first.name.slice(0, slash + 1) };
}

export function isTorchArchive(zip: ZipArchive): boolean {
  return zip.entries.some((e) => /^[^/]*\/(data|constants|bytecode)\.pkl$/.test(e.name) || /^[^/]*\/model\.json$/.test(e.name));
}

/** Reads the small version records torch writes next to the pickle. */
export function readRecords(a: TorchArchive): Record<string, string> {
  const records: Record<string, string> = {};
  for (const name of ['version', '.data/version', 'byteorder', '.format_version', '.storage_alignment', '.data/serialization_id']) {
    const text = a.zip.readText(a.prefix + name);
    if (text !== undefined) records[name] = text.trim();
  }
  records['archive'] = a.prefix.slice(0, -1);
  return records;
}

/**
 * What the torch zip reader leaves for the file's security scan (`scanFile`): the scan of each
 * pickle record it unpickled, made in the same walk.
 */
export class PrescannedPickles {
  private readonly byRecord = new Map<string, PickleScan>();
  /** the archive the records belong to, its directory parsed once for the reader and the scan */
  zip?: ZipArchive;

  /** The scan of this very record (same name, same local header), if the reader walked it. */
  get(e: ZipEntry): PickleScan | undefined {
    return this.byRecord.get(`${e.localHeaderOffset}:${e.name}`);
  }
  set(e: ZipEntry, scan: PickleScan): void {
    this.byRecord.set(`${e.localHeaderOffset}:${e.name}`, scan);
  }
  get size(): number {
    return this.byRecord.size;
  }
}

/** The storages of a pickle by key (a `Map`, or a `StorageTable`). */
export interface StoragesByKey {
  get(key: string): TorchStorage | undefined;
  set(key: string, s: TorchStorage): unknown;
}

/**
 * Storages by key: torch's keys are `0`, `1`, … in the order the pickle first names them, so
 * those live in an array; any other key in a Map. 100,000 fresh key strings hashed into a Map
 * (a miss, then an insert) were most of `loadStorage`'s 150 ms.
 */
export class StorageTable implements StoragesByKey {
  private readonly byNumber: (TorchStorage | undefined)[] = [];
  private readonly others = new Map<string, TorchStorage>();

  get(key: string): TorchStorage | undefined {
    const n = decimalKey(key, 0);
    return (n >= 0 && n < this.byNumber.length ? this.byNumber[n] : undefined) ?? this.others.get(key);
  }

  set(key: string, s: TorchStorage): this {
    const n = decimalKey(key, 0);
    // a number far past the end would make the array sparse (slow): those keys go to the Map
    if (n >= 0 && n <= this.byNumber.length + 1024) {
      while (this.byNumber.length < n) this.byNumber.push(undefined);
      this.byNumber[n] = s;
    } else this.others.set(key, s);
    return this;
  }
}

/**
 * Unpickles one pickle record of a torch archive with lazy storages from `data/<key>`.
 * Storages with the same key are one object, as in torch's `persistent_load` (`loaded_storages`).
 */
export function unpickleRecord(
  a: TorchArchive,
  record: string,
  storages: StoragesByKey,
  dataDir = 'data/',
  scans?: PrescannedPickles,
  /** false: every opcode through the VM (tests compare the two) */
  fastItems = true,
): UnpickleResult {
  const file = a.zip.reader.name;
  const entry = a.zip.get(a.prefix + record);
  if (!entry) fail('not-a-checkpoint', `${file}: archive has no ${record}`, file);
  const bytes = a.zip.readPickleRecord(entry);
  const folder = a.prefix + dataDir;
  const made = new ZipRecordStorages(a.zip);
  const loadStorageById = (id: StorageId): TorchStorage => {
    const existing = storages.get(id.key);
    if (existing) return existing;
    const e = a.zip.getNumbered(folder, id.key);
    if (!e) fail('truncated', `${file}: storage record ${dataDir}${id.key} is missing from the archive; the file is incomplete`, file);
    const nbytes = id.numel * id.dtype.size;
    if (e.uncompressedSize < nbytes) {
      fail(
        'truncated',
        `${file}: storage ${dataDir}${id.key} holds ${e.uncompressedSize} bytes but its ${id.numel} ${id.dtype.name} elements need ${nbytes}`,
        file,
      );
    }
    const s = made.make(id, e);
    storages.set(id.key, s);
    return s;
  };
  const input = PickleInput.fromBytes(bytes, file);
  if (!scans) return unpickleTorchPickle(input, record, loadStorageById, undefined, fastItems);
  // the security scan rides along: the file's verdict needs no second walk of this pickle
  const scanner = new PickleScanner(0);
  const result = unpickleTorchPickle(input, record, loadStorageById, scanner, fastItems);
  scans.zip = a.zip;
  if (!scanner.running && !scanner.failed) scans.set(entry!, scanner.finish(input.pos));
  return result;
}

/**
 * Unpickles a torch.save pickle whose storages `loadStorageById` makes (once per key), with torch.save's
 * str → tensor items read a whole item at a time (`TensorItemReader`) unless `fastItems` is false.
 */
export function unpickleTorchPickle(
  input: PickleInput,
  record: string,
  loadStorageById: (id: StorageId) => TorchStorage,
  scanner?: PickleScanner,
  fastItems = true,
): UnpickleResult {
  const file = input.name;
  const loadStorage = (pid: PyValue): TorchStorage => loadStorageById(decodeStorageId(pid, file));
  const hooks = torchPickleHooks(file, loadStorage);
  if (fastItems) {
    const reader = new TensorItemReader(file, loadStorageById);
    hooks.items = (site, at) => reader.read(site, at);
  }
  return unpickle(input, hooks, record, scanner);
}

export function globalRefs(result: UnpickleResult, record: string): GlobalRef[] {
  return [...result.globals.values()].map((g) => ({ module: g.module, name: g.name, record, calls: g.calls }));
}

/**
 * What the storages of one archive have alike, as one object they share: the class, element
 * type and device of a state dict's storages are nearly always one or a few.
 */
class ZipStorageKind {
  constructor(
    readonly storageType: string,
    readonly dtype: DTypeInfo,
    readonly location: string,
    readonly zip: ZipArchive,
  ) {}
}

/** Own fields of a storage whose bytes are a zip record; the rest come from its `ZipStorageKind`, or are constants. */
class ZipRecordStorageFields {
  readonly serial = takeStorageSerial();
  constructor(
    readonly key: string,
    readonly numel: number,
    private readonly entry: ZipEntry,
    private readonly alike: ZipStorageKind,
  ) {}
  get storageType(): string {
    return this.alike.storageType;
  }
  get dtype(): DTypeInfo {
    return this.alike.dtype;
  }
  get location(): string {
    return this.alike.location;
  }
  /**
   * The storage's bytes in its record, found when first asked: the local header is read only now.
   * Compressed storages are not written by torch, but some tools do: those are inflated on demand.
   */
  locate(): ByteRange {
    const { entry } = this;
    const { zip } = this.alike;
    const nbytes = (this as unknown as TorchStorage).nbytes;
    if (entry.method === 0) {
      const r = zip.dataRange(entry);
      return { reader: r.reader, offset: r.offset, length: nbytes };
    }
    const inflated = zip.readEntry(entry);
    return { reader: new BufferReader(inflated, `${zip.reader.name}:${entry.name}`), offset: 0, length: nbytes };
  }
  /** The CRC-32 the archive recorded, when the record is exactly these bytes, stored: read from the entry, not kept per storage. */
  get recordCrc(): number | null {
    const e = this.entry;
    return e.method === 0 && e.uncompressedSize === (this as unknown as TorchStorage).nbytes ? e.crc32 >>> 0 : null;
  }
}

inheritWithConstants(ZipRecordStorageFields, TorchStorage, { storageModule: 'torch', viewOf: null, viewOffset: 0, where: LOCATED_BY_ITSELF });

/**
 * Makes the storages of one archive's records. A 100,000-tensor checkpoint makes 100,000 and keeps
 * them to the end, so each is one object of the fields that differ (64 bytes): a `TorchStorage`
 * with a locator object and a recorded CRC (a heap number when ≥ 2³¹) was 112 + 48 + 16 bytes,
 * copied by every scavenge.
 */
class ZipRecordStorages {
  private last: ZipStorageKind | null = null;
  constructor(private readonly zip: ZipArchive) {}

  /** The storage `id` names, whose bytes are the zip record `entry` (checked to hold them). */
  make(id: StorageId, entry: ZipEntry): TorchStorage {
    let alike = this.last;
    if (!alike || alike.storageType !== id.storageType || alike.dtype !== id.dtype || alike.location !== id.location)
      alike = this.last = new ZipStorageKind(id.storageType, id.dtype, id.location, this.zip);
    const s = new ZipRecordStorageFields(id.key, id.numel, entry, alike);
    // `torch.cuda.FloatStorage` and the like (old files): the one field that differs, as its own
    if (id.storageModule !== 'torch') Object.defineProperty(s, 'storageModule', { value: id.storageModule, enumerable: true });
    return s as unknown as TorchStorage;
  }
}

/** `torch.save` zip files: `data.pkl` is the whole object. */
export function readTorchZip(a: TorchArchive, scans?: PrescannedPickles): FormatReading {
  const records = readRecords(a);
  const result = unpickleRecord(a, 'data.pkl', new StorageTable(), 'data/', scans);
  const notes: string[] = [];
  if (records['byteorder'] === 'big') notes.push('storages are big-endian (byteorder record); values are shown as stored');
  records['pickle_protocol'] = String(result.protocol);
  return {
    format: 'torch-zip',
    records,
    root: result.value,
    globals: globalRefs(result, 'data.pkl'),
    pickleOpcodes: result.opcodes,
    notes,
    close: () => a.zip.reader.close(),
  };
}
