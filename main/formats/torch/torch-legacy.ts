import { fail } from '../../errors.ts';
import type { FormatReading, GlobalRef } from '../values/format-reading.ts';
import { PickleInput } from '../pickle/pickle-input.ts';
import { unpickle, type UnpickleResult } from '../pickle/unpickler.ts';
import { PyDict, PyGlobal, PyList, PyTuple, pyRepr, type PyValue } from '../values/python-values.ts';
import type { RandomAccessReader } from '../../io/random-access.ts';
import { decodeStorageId, torchPickleHooks } from './torch-pickle.ts';
import { TorchStorage } from '../values/torch-values.ts';

/**
 * The legacy (pre-1.6, `_use_new_zipfile_serialization=False`) format, torch/serialization.py
 * `_legacy_save` / `_legacy_load`: five pickles in a row (magic number, protocol version 1001,
 * sys_info, the object, the list of storage keys), then each storage in that key order as an
 * int64 element count followed by its raw bytes.
 */
export const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

/** Cheap check: the file starts with a pickle of the magic number. */
export function looksLikeLegacy(reader: RandomAccessReader): boolean {
  if (reader.size < 12) return false;
  const first = reader.read(0, 1)[0];
  // protocol 2+ starts with PROTO; protocols 0/1 write the number as text (`L<decimal>L\n`)
  if (first !== 0x80 && first !== 0x4c) return false;
  try {
    const v = unpickle(new PickleInput(reader, 0, Math.min(reader.size, 64)), {}, 'magic number').value;
    return (typeof v === 'bigint' || typeof v === 'number') && BigInt(v) === LEGACY_MAGIC;
  } catch {
    return false;
  }
}

export function readTorchLegacy(reader: RandomAccessReader): FormatReading {
  const file = reader.name;
  const input = new PickleInput(reader);
  const magic = unpickle(input, {}, 'magic number').value;
  if (BigInt(typeof magic === 'number' || typeof magic === 'bigint' ? magic : -1) !== LEGACY_MAGIC) {
    fail('not-a-checkpoint', `${file}: legacy torch file has a wrong magic number; the file is corrupt`, file);
  }
  const proto = unpickle(input, {}, 'protocol version').value;
  if (proto !== PROTOCOL_VERSION) fail('unsupported', `${file}: legacy protocol version ${pyRepr(proto)} (torch wrote only ${PROTOCOL_VERSION})`, file);
  const sysInfo = unpickle(input, {}, 'sys_info').value;
  const littleEndian = !(sysInfo instanceof PyDict) || sysInfo.get('little_endian') !== false;

  const roots = new Map<string, TorchStorage>();
  const views = new Map<string, TorchStorage>();
  const rootOffsets = new Map<string, number>();
  const loadStorage = (pid: PyValue): TorchStorage | PyValue => {
    // ('module', cls, source_file, source) records a whole module's class and its source text.
    if (pid instanceof PyTuple && pid.items[0] === 'module') return pid.items[1] ?? null;
    const id = decodeStorageId(pid, file);
    let root = roots.get(id.key);
    if (!root) {
      const key = id.key;
      root = new TorchStorage(
        key,
        id.storageType,
        id.dtype,
        id.location,
        id.numel,
        () => {
          const at = rootOffsets.get(key);
          if (at === undefined) fail('truncated', `${file}: storage ${key} is not in the storage list; the file is corrupt`, file);
          return { reader, offset: at, length: id.numel * id.dtype.size };
        },
        id.storageModule,
      );
      roots.set(id.key, root);
    }
    if (!id.view) return root;
    // A view of a root storage (`view_metadata`): a byte window of the root.
    const viewKey = id.view.key;
    const existing = views.get(viewKey);
    if (existing) return existing;
    const r = root;
    const v = new TorchStorage(
      viewKey,
      id.storageType,
      id.dtype,
      id.location,
      id.view.numel,
      () => {
        const base = r.locate();
        const off = id.view!.offset * id.dtype.size;
        if (off + id.view!.numel * id.dtype.size > base.length) fail('bad-pickle', `${file}: storage view ${viewKey} lies outside its root storage`, file);
        return { reader: base.reader, offset: base.offset + off, length: id.view!.numel * id.dtype.size };
      },
      id.storageModule,
    );
    v.viewOf = root;
    v.viewOffset = id.view.offset * id.dtype.size;
    views.set(viewKey, v);
    return v;
  };
  const hooks = torchPickleHooks(file, loadStorage as (pid: PyValue) => TorchStorage);
  const result = unpickle(input, hooks, 'object pickle');
  const keys = unpickle(input, {}, 'storage key list').value;
  if (!(keys instanceof PyList)) fail('bad-pickle', `${file}: legacy storage key list is not a list`, file);

  // Walk the storage headers: int64 element count, then the bytes (THPStorage `_set_from_file`).
  let at = input.pos;
  for (const k of keys.items) {
    const key = String(k);
    const s = roots.get(key);
    if (!s) fail('bad-pickle', `${file}: storage ${key} is listed but never used`, file);
    const head = reader.read(at, 8);
    const dv = new DataView(head.buffer, head.byteOffset, 8);
    const count = Number(dv.getBigInt64(0, littleEndian));
    if (count !== s.numel) fail('bad-pickle', `${file}: storage ${key} records ${count} elements but the pickle says ${s.numel}`, file);
    rootOffsets.set(key, at + 8);
    at += 8 + s.nbytes;
    if (at > reader.size) fail('truncated', `${file}: storage ${key} runs past the end of the file (${reader.size} bytes); the file is truncated`, file);
  }
  const records: Record<string, string> = { protocol_version: String(PROTOCOL_VERSION), pickle_protocol: String(result.protocol) };
  if (sysInfo instanceof PyDict) {
    for (const [k, v] of sysInfo.entries) if (typeof k === 'string' && !(v instanceof PyDict)) records[`sys_info.${k}`] = pyRepr(v);
  }
  const notes = littleEndian ? [] : ['storages are big-endian (sys_info.little_endian is False)'];
  if (at < reader.size) notes.push(`${reader.size - at} bytes follow the last storage`);
  return {
    format: 'torch-legacy',
    records,
    root: result.value,
    globals: refs(result, 'object pickle'),
    pickleOpcodes: result.opcodes,
    notes,
    close: () => reader.close(),
  };
}

function refs(result: UnpickleResult, record: string): GlobalRef[] {
  return [...result.globals.values()].map((g) => ({ ...g, record }));
}

// ---------------------------------------------------------------------------------------------
// The tar format of torch ≤ 0.1.x (`legacy_load` inside `_legacy_load`): members `sys_info`,
// `pickle`, `tensors` and `storages`; the pickle refers to tensors and storages by decimal ids.

export interface TarMember {
  name: string;
  offset: number;
  size: number;
}

export function looksLikeTar(reader: RandomAccessReader): boolean {
  if (reader.size < 512) return false;
  const magic = Buffer.from(reader.read(257, 5)).toString('latin1');
  return magic === 'ustar';
}

export function readTarMembers(reader: RandomAccessReader): Map<string, TarMember> {
  const members = new Map<string, TarMember>();
  let at = 0;
  let longName: string | null = null;
  while (at + 512 <= reader.size) {
    const h = reader.read(at, 512);
    if (h.every((b) => b === 0)) break;
    const text = (o: number, n: number): string =>
      Buffer.from(h.subarray(o, o + n))
        .toString('latin1')
        .replace(/\0.*$/s, '');
    const size = parseInt(text(124, 12).trim() || '0', 8);
    if (!Number.isFinite(size) || size < 0) fail('not-a-checkpoint', `${reader.name}: tar header at ${at} is damaged`, reader.name);
    const type = String.fromCharCode(h[156]!);
    const dataAt = at + 512;
    if (dataAt + size > reader.size) fail('truncated', `${reader.name}: tar member runs past the end of the file; the file is truncated`, reader.name);
    if (type === 'x' || type === 'L') {
      // PAX extended header (or GNU long name): take the path if present.
      const body = Buffer.from(reader.read(dataAt, size)).toString('utf8');
      const m = type === 'L' ? [null, body.replace(/\0.*$/s, '')] : /\d+ path=([^\n]*)\n/.exec(body);
      longName = m ? m[1]! : null;
    } else {
      const name = longName ?? text(0, 100);
      members.set(name, { name, offset: dataAt, size });
      longName = null;
    }
    at = dataAt + Math.ceil(size / 512) * 512;
  }
  return members;
}

export function readTorchTar(reader: RandomAccessReader): FormatReading {
  const file = reader.name;
  const members = readTarMembers(reader);
  const member = (n: string): TarMember =>
    members.get(n) ?? fail('not-a-checkpoint', `${file}: tar archive has no '${n}' member; it is not a torch tar checkpoint`, file);
  const storagesM = member('storages');
  const tensorsM = member('tensors');
  const pickleM = member('pickle');
  const objects = new Map<string, PyValue>();
  const globals: GlobalRef[] = [];

  const sIn = new PickleInput(reader, storagesM.offset, storagesM.offset + storagesM.size);
  const numStorages = unpickle(sIn, {}, 'storages').value;
  if (typeof numStorages !== 'number' || numStorages < 0 || numStorages > storagesM.size) fail('bad-pickle', `${file}: storage count is invalid`, file);
  for (let i = 0; i < numStorages; i++) {
    const args = unpickle(sIn, {}, 'storages').value;
    if (!(args instanceof PyTuple) || args.items.length !== 3) fail('bad-pickle', `${file}: storage header ${i} is malformed`, file);
    const [key, location, type] = args.items;
    if (!(type instanceof PyGlobal)) fail('bad-pickle', `${file}: storage type is not a class`, file);
    const id = decodeStorageId(new PyTuple(['storage', type, String(key), String(location), 0]), file);
    const head = reader.read(sIn.pos, 8);
    const numel = Number(new DataView(head.buffer, head.byteOffset, 8).getBigInt64(0, true));
    const dataAt = sIn.pos + 8;
    if (numel < 0 || dataAt + numel * id.dtype.size > storagesM.offset + storagesM.size)
      fail('truncated', `${file}: storage ${String(key)} runs past its tar member`, file);
    objects.set(
      String(key),
      new TorchStorage(
        String(key),
        id.storageType,
        id.dtype,
        id.location,
        numel,
        () => ({ reader, offset: dataAt, length: numel * id.dtype.size }),
        id.storageModule,
      ),
    );
    sIn.pos = dataAt + numel * id.dtype.size;
  }
  const storageViews = unpickle(sIn, {}, 'storage views').value;
  if (storageViews instanceof PyList) {
    for (const v of storageViews.items) {
      if (!(v instanceof PyTuple)) continue;
      const [target, rootKey, offset, numel] = v.items;
      const root = objects.get(String(rootKey));
      if (!(root instanceof TorchStorage) || typeof offset !== 'number' || typeof numel !== 'number')
        fail('bad-pickle', `${file}: storage view is malformed`, file);
      const off = offset * root.dtype.size;
      const sv = new TorchStorage(
        String(target),
        root.storageType,
        root.dtype,
        root.location,
        numel,
        () => {
          const b = root.locate();
          return { reader: b.reader, offset: b.offset + off, length: numel * root.dtype.size };
        },
        root.storageModule,
      );
      sv.viewOf = root;
      sv.viewOffset = off;
      objects.set(String(target), sv);
    }
  }
  const tIn = new PickleInput(reader, tensorsM.offset, tensorsM.offset + tensorsM.size);
  const numTensors = unpickle(tIn, {}, 'tensors').value;
  if (typeof numTensors !== 'number' || numTensors < 0 || numTensors > tensorsM.size) fail('bad-pickle', `${file}: tensor count is invalid`, file);
  for (let i = 0; i < numTensors; i++) {
    const args = unpickle(tIn, {}, 'tensors').value;
    if (!(args instanceof PyTuple)) fail('bad-pickle', `${file}: tensor header ${i} is malformed`, file);
    const [key, storageId] = args.items;
    const storage = objects.get(String(storageId));
    if (!(storage instanceof TorchStorage)) fail('bad-pickle', `${file}: tensor ${String(key)} names a missing storage`, file);
    const head = reader.read(tIn.pos, 8);
    const nd = new DataView(head.buffer, head.byteOffset, 8).getInt32(0, true);
    if (nd < 0 || nd > 64) fail('bad-pickle', `${file}: tensor ${String(key)} has ${nd} dimensions`, file);
    const body = reader.read(tIn.pos + 8, 16 * nd + 8);
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const shape = Array.from({ length: nd }, (_, j) => Number(dv.getBigInt64(8 * j, true)));
    const stride = Array.from({ length: nd }, (_, j) => Number(dv.getBigInt64(8 * (nd + j), true)));
    const offset = Number(dv.getBigInt64(16 * nd, true));
    tIn.pos += 8 + 16 * nd + 8;
    // Expressed as the equivalent `_rebuild_tensor_v2` recipe so that every later stage sees one form.
    const rebuilt = torchPickleHooks(file, () => storage).call!(
      new PyGlobal('torch._utils', '_rebuild_tensor_v2'),
      [storage, offset, new PyTuple(shape), new PyTuple(stride), false, new PyDict(true)],
      'reduce',
    );
    objects.set(String(key), rebuilt ?? null);
  }
  const pIn = new PickleInput(reader, pickleM.offset, pickleM.offset + pickleM.size);
  const result = unpickle(
    pIn,
    {
      ...torchPickleHooks(file, () => fail('bad-pickle', `${file}: unexpected storage id`, file)),
      persistentLoad: (pid) => {
        if (pid instanceof PyTuple) return pid.items[0] ?? null;
        const o = objects.get(String(pid));
        if (o === undefined) fail('bad-pickle', `${file}: pickle refers to unknown object ${String(pid)}`, file);
        return o;
      },
    },
    'pickle',
  );
  globals.push(...refs(result, 'pickle'));
  return { format: 'torch-tar', records: { members: [...members.keys()].join(',') }, root: result.value, globals, notes: [], close: () => reader.close() };
}
