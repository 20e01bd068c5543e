/**
 * `torch.distributed.checkpoint` folders (DCP), read without torch: a `.metadata` pickle and data
 * files `__<rank>_<n>.distcp`, each a run of complete `torch.save` zip archives back to back, one
 * per item, at the byte ranges `.metadata` gives.
 *
 * `.metadata` is a pickle (protocol 4 by torch's `pickle.dump`) of dataclasses, which the pickle
 * VM keeps as opaque objects with their BUILD state and this module interprets
 * (torch/distributed/checkpoint/metadata.py, filesystem.py):
 *
 *   Metadata(state_dict_metadata: {fqn: TensorStorageMetadata | BytesStorageMetadata},
 *            planner_data: {fqn: path tuple} | None,
 *            storage_data: {MetadataIndex(fqn, offset, index): _StorageInfo(relative_path, offset, length)},
 *            storage_meta, version)
 *   TensorStorageMetadata(properties: TensorProperties, size: torch.Size, chunks: [ChunkStorageMetadata(offsets, sizes)])
 *   TensorProperties pickles its state as the tuple (dtype, layout, requires_grad, memory_format, pin_memory)
 *
 * Reading the folder as one checkpoint follows `format_utils.dcp_to_torch_save`: the state dict is
 * rebuilt item by item in `state_dict_metadata` order, each placed at its `planner_data` path with
 * `_traverse.set_element` (dicts for str keys, lists for int keys), tensors as plain contiguous
 * `torch.empty(size, dtype)` filled from their chunks, bytes items as `torch.load` of their archive
 * (`DefaultLoadPlanner.load_bytes`). Tensors are assembled lazily: a chunk's archive is opened
 * only when the writer streams that tensor.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dtypeByName, type DTypeInfo } from '../../../shared/dtypes.ts';
import { asCheckpointError, fail } from '../../errors.ts';
import type { FormatReading, GlobalRef } from '../values/format-reading.ts';
import { PickleInput } from '../pickle/pickle-input.ts';
import { unpickle } from '../pickle/unpickler.ts';
import { PyDict, PyGlobal, PyList, PyObject, PyTuple, shapeItems, type PyValue } from '../values/python-values.ts';
import { FileReader } from '../../io/random-access.ts';
import { looksLikeSafetensors } from '../safetensors/safetensors.ts';
import { AssembledSource, BoxSource, FileWindow, ViewSource, numelOf, type Piece, type TensorSource } from '../values/tensor-source.ts';
import { globalRefs, openTorchArchive, unpickleRecord } from '../torch/torch-zip.ts';
import { TorchTensor, type TorchStorage } from '../values/torch-values.ts';
import { sourceTensor } from '../values/virtual-tensor.ts';
import { plural } from '../../../shared/plural.ts';

export const METADATA_FILE = '.metadata';
/** `.metadata` of a huge model is tens of MB; anything near this is not a DCP metadata file. */
const MAX_METADATA_BYTES = 1 << 30;

export interface DcpStorageInfo {
  /** data file name, relative to the folder */
  file: string;
  offset: number;
  length: number;
}

export interface DcpChunk {
  offsets: number[];
  sizes: number[];
  storage: DcpStorageInfo;
}

export type DcpItem =
  | { kind: 'tensor'; fqn: string; dtype: DTypeInfo; size: number[]; requiresGrad: boolean; chunks: DcpChunk[] }
  | { kind: 'bytes'; fqn: string; storage: DcpStorageInfo };

export interface DcpMetadata {
  folder: string;
  items: DcpItem[];
  /** flattened key → path in the original nested state dict (`DefaultSavePlanner` mappings), or null */
  plannerData: Map<string, (string | number)[]> | null;
  version: string | null;
  protocol: number;
  globals: GlobalRef[];
  /** data files in first-use order */
  files: string[];
}

/** A folder holding a `.metadata` file. */
export function isDcpFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory() && fs.statSync(path.join(p, METADATA_FILE)).isFile();
  } catch {
    return false;
  }
}

/** The attribute dict a dataclass was rebuilt with (a dict, or `(None, slots)` for slotted classes). */
function attrs(v: PyValue | undefined, what: string, file: string): PyDict {
  if (v instanceof PyObject) {
    const st = v.state;
    if (st instanceof PyDict) return st;
    if (st instanceof PyTuple && st.items[1] instanceof PyDict) return st.items[1];
  }
  return fail('not-a-checkpoint', `${file}: ${what} is not the dataclass torch writes (got ${v instanceof PyObject ? v.className : typeof v})`, file);
}

function className(v: PyValue | undefined): string {
  return v instanceof PyObject ? v.className.split('.').pop()! : '';
}

/** `torch.Size((a, b))`, a tuple or a list of ints. */
function ints(v: PyValue | undefined, what: string, file: string): number[] {
  const items = shapeItems(v);
  if (!items || !items.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0))
    fail('not-a-checkpoint', `${file}: ${what} is not a list of sizes`, file);
  return items as number[];
}

function indexKey(fqn: string, offsets: number[] | null): string {
  return offsets ? `${fqn}\0${offsets.join(',')}` : `${fqn}\0-`;
}

export function readDcpMetadata(folder: string): DcpMetadata {
  const file = path.join(folder, METADATA_FILE);
  const reader = new FileReader(file);
  try {
    if (reader.size > MAX_METADATA_BYTES) fail('too-large', `${file}: ${reader.size} bytes is too large for a distributed-checkpoint .metadata`, file);
    // Persistent ids never occur in .metadata; keep them opaque if a damaged file has one.
    const result = unpickle(new PickleInput(reader), {}, METADATA_FILE);
    const root = result.value;
    if (!(root instanceof PyObject) || className(root) !== 'Metadata') {
      fail(
        'not-a-checkpoint',
        `${file}: not a torch.distributed.checkpoint Metadata pickle (it holds ${root instanceof PyObject ? root.className : typeof root})`,
        file,
      );
    }
    const md = attrs(root, 'Metadata', file);
    const sdm = md.get('state_dict_metadata');
    const storageData = md.get('storage_data');
    const planner = md.get('planner_data');
    const version = md.get('version');
    if (!(sdm instanceof PyDict)) fail('not-a-checkpoint', `${file}: Metadata has no state_dict_metadata dict`, file);
    if (!(storageData instanceof PyDict))
      fail('not-a-checkpoint', `${file}: Metadata has no storage_data dict (written by a storage writer other than torch's FileSystemWriter?)`, file);

    // storage_data: MetadataIndex(fqn, offset, index) → _StorageInfo(relative_path, offset, length)
    const where = new Map<string, DcpStorageInfo>();
    const files: string[] = [];
    for (const [k, v] of storageData.entries) {
      const idx = attrs(k, 'a storage_data key (MetadataIndex)', file);
      const fqn = idx.get('fqn');
      if (typeof fqn !== 'string') fail('not-a-checkpoint', `${file}: a MetadataIndex has no fqn`, file);
      const off = idx.get('offset');
      const info = attrs(v, `storage info of ${fqn}`, file);
      const rel = info.get('relative_path');
      const offset = info.get('offset');
      const length = info.get('length');
      const transforms = info.get('transform_descriptors');
      if (typeof rel !== 'string' || typeof offset !== 'number' || typeof length !== 'number' || offset < 0 || length < 0) {
        fail('not-a-checkpoint', `${file}: storage info of ${fqn} lacks relative_path, offset or length`, file);
      }
      if (path.isAbsolute(rel) || rel.split(/[\\/]/).includes('..'))
        fail('not-a-checkpoint', `${file}: data file name ${JSON.stringify(rel)} points outside the folder`, file);
      if ((transforms instanceof PyList || transforms instanceof PyTuple) && transforms.items.length) {
        fail(
          'unsupported',
          `${file}: ${fqn} was saved through stream transforms (${transforms.items.map(String).join(', ')}), e.g. compression; only plain FileSystemWriter checkpoints are read`,
          file,
        );
      }
      if (!files.includes(rel)) files.push(rel);
      where.set(indexKey(fqn, off === null || off === undefined ? null : ints(off, `offset of ${fqn}`, file)), { file: rel, offset, length });
    }

    const items: DcpItem[] = [];
    for (const [k, v] of sdm.entries) {
      if (typeof k !== 'string') fail('not-a-checkpoint', `${file}: a state_dict_metadata key is not a string`, file);
      const cls = className(v);
      if (cls === 'BytesStorageMetadata') {
        const storage = where.get(indexKey(k, null));
        if (!storage) fail('not-a-checkpoint', `${file}: ${k} has no entry in storage_data; the checkpoint is incomplete`, file);
        items.push({ kind: 'bytes', fqn: k, storage });
        continue;
      }
      if (cls !== 'TensorStorageMetadata')
        fail('unsupported', `${file}: ${k} is described by ${v instanceof PyObject ? v.className : typeof v}, which this reader does not know`, file);
      const a = attrs(v, `metadata of ${k}`, file);
      const { dtype, requiresGrad } = tensorProperties(a.get('properties'), k, file);
      const size = ints(a.get('size'), `size of ${k}`, file);
      const chunksV = a.get('chunks');
      if (!(chunksV instanceof PyList)) fail('not-a-checkpoint', `${file}: ${k} has no chunk list`, file);
      const chunks = chunksV.items.map((c, i): DcpChunk => {
        const ca = attrs(c, `chunk ${i} of ${k}`, file);
        const offsets = ints(ca.get('offsets'), `chunk offsets of ${k}`, file);
        const sizes = ints(ca.get('sizes'), `chunk sizes of ${k}`, file);
        const storage = where.get(indexKey(k, offsets));
        if (!storage) fail('not-a-checkpoint', `${file}: chunk [${offsets}] of ${k} has no entry in storage_data; the checkpoint is incomplete`, file);
        return { offsets, sizes, storage };
      });
      items.push({ kind: 'tensor', fqn: k, dtype, size, requiresGrad, chunks });
    }

    let plannerData: Map<string, (string | number)[]> | null = null;
    if (planner instanceof PyDict) {
      plannerData = new Map();
      for (const [k, v] of planner.entries) {
        if (
          typeof k !== 'string' ||
          !(v instanceof PyTuple || v instanceof PyList) ||
          v.items.length === 0 ||
          !v.items.every((x) => typeof x === 'string' || typeof x === 'number')
        ) {
          fail('not-a-checkpoint', `${file}: planner_data entry ${String(k)} is not a path of keys`, file);
        }
        plannerData.set(k, v.items as (string | number)[]);
      }
    }
    return {
      folder,
      items,
      plannerData,
      version: typeof version === 'string' ? version : null,
      protocol: result.protocol,
      globals: globalRefs(result, METADATA_FILE),
      files,
    };
  } catch (e) {
    throw asCheckpointError(e, file);
  } finally {
    reader.close();
  }
}

/** `TensorProperties`: its `__getstate__` tuple (torch ≥ 2.1), or the plain dataclass dict of older writers. */
function tensorProperties(v: PyValue | undefined, fqn: string, file: string): { dtype: DTypeInfo; requiresGrad: boolean } {
  let dt: PyValue | undefined;
  let rg: PyValue | undefined;
  if (v instanceof PyObject && v.state instanceof PyTuple) [dt, , rg] = v.state.items;
  else {
    const a = attrs(v, `properties of ${fqn}`, file);
    dt = a.get('dtype');
    rg = a.get('requires_grad');
  }
  const dtype = dt instanceof PyGlobal && dt.module === 'torch' ? dtypeByName(dt.name) : undefined;
  if (!dtype)
    fail('unsupported', `${file}: ${fqn} has dtype ${dt instanceof PyGlobal ? dt.fullName : String(dt)}, which is not a torch dtype this reader knows`, file);
  return { dtype, requiresGrad: rg === true };
}

/** The python globals torch's own writer puts in `.metadata` (not shown as a security finding). */
const DCP_GLOBALS =
  /^(torch\.distributed\.checkpoint\.|torch\.Size$|torch\.serialization\._get_layout$|pathlib\.(Posix|Windows)?Path$|torch\.[a-z0-9_]+$|collections\.OrderedDict$)/;

/**
 * `_traverse.set_element`: puts `value` at `path`, creating dicts for str keys and lists (padded
 * with None) for int keys on the way, as dcp_to_torch_save rebuilds the nested state dict.
 */
export function setElement(root: PyDict, keys: (string | number)[], value: PyValue): void {
  let cur: PyDict | PyList = root;
  const child = (c: PyDict | PyList, k: string | number, make: () => PyDict | PyList): PyDict | PyList => {
    if (c instanceof PyDict) {
      let x = c.get(k);
      if (x === undefined) c.set(k, (x = make()));
      if (!(x instanceof PyDict || x instanceof PyList)) fail('not-a-checkpoint', `planner_data puts items inside ${String(k)}, which holds a value`);
      return x;
    }
    if (typeof k !== 'number') fail('not-a-checkpoint', `planner_data indexes a list with ${JSON.stringify(k)}`);
    while (c.items.length <= k) c.items.push(null);
    let x = c.items[k];
    if (x === null || x === undefined) c.items[k] = x = make();
    if (!(x instanceof PyDict || x instanceof PyList)) fail('not-a-checkpoint', `planner_data puts items inside list item ${k}, which holds a value`);
    return x;
  };
  for (let i = 1; i < keys.length; i++) {
    const next = keys[i]!;
    cur = child(cur, keys[i - 1]!, () => (typeof next === 'string' ? new PyDict() : new PyList()));
  }
  const last = keys[keys.length - 1]!;
  if (cur instanceof PyDict) cur.set(last, value);
  else {
    if (typeof last !== 'number') fail('not-a-checkpoint', `planner_data indexes a list with ${JSON.stringify(last)}`);
    while (cur.items.length <= last) cur.items.push(null);
    cur.items[last] = value;
  }
}

/**
 * One chunk of a DCP tensor: its archive (`torch.save(chunk)`) is opened, and the tensor in it
 * checked against the metadata, on the first read.
 */
class ChunkSource implements TensorSource {
  readonly numel: number;
  private inner: TensorSource | null = null;
  constructor(
    readonly dtype: DTypeInfo,
    readonly shape: number[],
    private readonly window: FileWindow,
    private readonly what: string,
  ) {
    this.numel = numelOf(shape);
  }
  describe(): string {
    return this.what;
  }
  private open(): TensorSource {
    if (this.inner) {
      touch(this);
      return this.inner;
    }
    touch(this);
    const name = this.window.name;
    const archive = openTorchArchive(this.window);
    const value = unpickleRecord(archive, 'data.pkl', new Map()).value;
    if (!(value instanceof TorchTensor) || !value.storage || value.kind !== 'dense') {
      fail('not-a-checkpoint', `${name}: the item for ${this.what} is not a plain tensor (${value instanceof TorchTensor ? value.kind : typeof value})`, name);
    }
    if (value.dtype.name !== this.dtype.name)
      fail('not-a-checkpoint', `${name}: ${this.what} is ${value.dtype.name} in its data file but ${this.dtype.name} in .metadata`, name);
    const view = new ViewSource(value);
    // dcp narrows what it loads to the chunk (`narrow_tensor_by_index` from offset 0)
    if (String(value.shape) === String(this.shape)) return (this.inner = view);
    if (value.shape.length === this.shape.length && value.shape.every((d, i) => d >= this.shape[i]!))
      return (this.inner = new BoxSource(
        view,
        this.shape.map(() => 0),
        this.shape,
      ));
    return fail('not-a-checkpoint', `${name}: ${this.what} holds shape [${value.shape}] but .metadata says [${this.shape}]`, name);
  }
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void {
    this.open().readElements(first, count, out, outAt);
  }
  /** Forgets the opened archive (it is opened again if read again). */
  release(): void {
    this.inner = null;
  }
}

/** Opened chunk archives kept at once; older ones are forgotten, so a huge checkpoint's chunks never pile up. */
const OPEN_CHUNKS = 256;
const opened: ChunkSource[] = [];
function touch(c: ChunkSource): void {
  const i = opened.indexOf(c);
  if (i >= 0) opened.splice(i, 1);
  opened.push(c);
  while (opened.length > OPEN_CHUNKS) opened.shift()!.release();
}

export interface DcpReading extends FormatReading {
  dcp: DcpMetadata;
  /** the virtual tensors, by flattened key, with the chunk pieces they are assembled from */
  assembled: Map<string, { tensor: TorchTensor; pieces: Piece[] }>;
}

/** Opens a DCP folder as one checkpoint (see the module comment). Reads `.metadata` and the bytes items. */
export function readDcpFolder(folder: string): DcpReading {
  const meta = readDcpMetadata(folder);
  const readers = new Map<string, FileReader>();
  const closeAll = (): void => {
    for (const r of readers.values()) r.close();
  };
  try {
    for (const f of meta.files) {
      const p = path.join(folder, f);
      readers.set(f, new FileReader(p));
      // FileSystemWriter(serialization_format=SAFETENSORS) writes each data file as one safetensors file
      if (looksLikeSafetensors(readers.get(f)!))
        fail(
          'unsupported',
          `${p}: this distributed checkpoint was saved with serialization_format=SAFETENSORS; only torch.save data files (the default) are read`,
          p,
        );
    }
    const window = (s: DcpStorageInfo, what: string): FileWindow => {
      const r = readers.get(s.file)!;
      if (s.offset + s.length > r.size)
        fail('truncated', `${r.name}: ${what} lies at ${s.offset}+${s.length} but the file has ${r.size} bytes; it is truncated`, r.name);
      return new FileWindow(r.name, r.descriptor, s.offset, s.length);
    };
    const root = new PyDict(false);
    const globals: GlobalRef[] = meta.globals.filter((g) => !DCP_GLOBALS.test(`${g.module}.${g.name}`));
    const assembled = new Map<string, { tensor: TorchTensor; pieces: Piece[] }>();
    const storages = new Set<TorchStorage>();
    for (const item of meta.items) {
      let value: PyValue;
      if (item.kind === 'bytes') {
        const w = window(item.storage, item.fqn);
        const result = unpickleRecord(openTorchArchive(w), 'data.pkl', new Map());
        value = result.value;
        globals.push(...globalRefs(result, `${item.storage.file}@${item.storage.offset}`));
      } else {
        const pieces: Piece[] = item.chunks.map((c) => ({
          offsets: c.offsets,
          sizes: c.sizes,
          label: c.storage.file,
          source: new ChunkSource(
            item.dtype,
            c.sizes,
            window(c.storage, `${item.fqn} chunk [${c.offsets}]`),
            `${item.fqn} chunk [${c.offsets}] in ${c.storage.file}`,
          ),
        }));
        const src = new AssembledSource(item.dtype, item.size, pieces, item.fqn);
        const t = sourceTensor(item.fqn, src, 'cpu');
        storages.add(t.storage!);
        assembled.set(item.fqn, { tensor: t, pieces });
        value = t;
      }
      const at = meta.plannerData?.get(item.fqn);
      if (at) setElement(root, at, value);
      else root.set(item.fqn, value);
    }
    const tensors = meta.items.filter((i) => i.kind === 'tensor').length;
    return {
      format: 'dcp',
      records: {
        container: 'torch.distributed.checkpoint folder',
        ...(meta.version ? { dcp_version: meta.version } : {}),
        metadata_pickle_protocol: String(meta.protocol),
        items: String(meta.items.length),
        tensors: String(tensors),
        data_files: meta.files.join(', '),
      },
      root,
      globals,
      notes: [
        `a distributed checkpoint: ${plural(meta.items.length, 'item')} (${plural(tensors, 'tensor')}) in ${plural(meta.files.length, 'data file')}, read as dcp_to_torch_save would load it`,
      ],
      close: closeAll,
      dcp: meta,
      assembled,
    };
  } catch (e) {
    closeAll();
    throw asCheckpointError(e, folder);
  }
}
