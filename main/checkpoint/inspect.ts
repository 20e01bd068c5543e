import * as path from 'node:path';
import type { InspectReport, RoleInfo, TensorInfo, TreeNode } from '../../shared/inspect.ts';
import type { FormatReading } from '../formats/values/format-reading.ts';
import { PyBytes, PyComplex, PyDict, PyFloat, PyGlobal, PyList, PyObject, PySet, PyTuple, pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { TorchStorage, TorchTensor } from '../formats/values/torch-values.ts';
import { detectLayout } from './layout.ts';
import { keyTrie } from './key-trie.ts';
import { numpyScalarText, scalarValues } from './scalar-values.ts';
import { asStateDict, findRoles, type Role, type StateDictEntry } from './roles.ts';
import * as fs from 'node:fs';
import type { SecurityReport } from '../../shared/inspect.ts';
import { loadClaims } from './load-claims.ts';
import { scanSecurity, securityOfPath, type Prescanned } from './security.ts';
import { childrenOf, valueAt, walkTensors, type TensorAt } from './tree.ts';
import { rootStorage, tensorInfo, TensorInfoWriter, type StatePaths } from './tensor-info.ts';
import { plural } from '../../shared/plural.ts';

/** An opened checkpoint with everything the engine found in it. Tensor bytes are still unread. */
export interface Checkpoint {
  file: string;
  reading: FormatReading;
  tensors: TensorAt[];
  roles: Role[];
  report: InspectReport;
  /** the storages more than one tensor path uses (the others are used by exactly one) */
  sharedStorages: ReadonlySet<TorchStorage>;
  /** `report.tensors` made a piece at a time (`--json` of 500,000 tensors need not hold 500,000 objects) */
  tensorInfoPieces(): TensorInfoPieces;
  close(): void;
}

interface TensorCount {
  tensors: number;
  bytes: number;
}

/** A list made in order, `items(from, to)` or `json(from, to)` for consecutive ranges from 0. */
export interface TensorInfoPieces {
  length: number;
  items(from: number, to: number): TensorInfo[];
  /** `JSON.stringify(items(from, to)).slice(1, -1)`, made without the objects */
  json(from: number, to: number): string;
  /** `json(from, to)` as UTF-8 bytes, made without one long string */
  utf8(from: number, to: number): Uint8Array;
}

export interface AnalyseOptions {
  /** set when the file belongs to a per-rank family found in its folder */
  familyRank?: number;
  /** the file's size, when known (readers over memory have none) */
  fileBytes?: number;
  /** children shown per tree node (default 64) */
  treeWidth?: number;
  /** the scans of pickles the reader walked (`OpenFormatOptions.scans`, or a DeepSpeed folder's by file): the security scan reuses them */
  pickleScans?: Prescanned;
}

export { rootStorage } from './tensor-info.ts';

/** The scan engine over the file's bytes; a reading with no file behind it (tests, memory) is classified from its globals. */
function securityOf(file: string, reading: FormatReading, scans: Prescanned | undefined): SecurityReport {
  return fs.existsSync(file) ? securityOfPath(file, scans) : scanSecurity(reading.globals, reading.root);
}

export function analyse(file: string, reading: FormatReading, opts: AnalyseOptions = {}): Checkpoint {
  // TorchScript constants (`constants.pkl`) hold tensors the code uses directly.
  const constants = reading.torchscript?.constants;
  const tensors = [
    ...walkTensors(reading.root),
    ...(constants ? walkTensors(constants).map((t) => ({ path: ['(constants)', ...t.path], tensor: t.tensor })) : []),
  ];
  const roles = findRoles(reading.root);
  // each distinct storage (the keys) with the number of tensor paths that use it
  const storages = distinctStorages(tensors);
  const sharedStorages = storages.shared;
  const byDtype: Record<string, TensorCount> = {};
  const byDevice: Record<string, TensorCount> = {};
  // tensors in a row mostly share their dtype and device: each entry is looked up when they change
  let dtype = '';
  let device = '';
  let ofDtype: TensorCount | undefined;
  let ofDevice: TensorCount | undefined;
  // Loops over every tensor are indexed, not `for…of`: each runs once per file, mostly before V8
  // optimizes it, and an unoptimized `for…of` over 100,000 entries cost several times the indexed reads.
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!.tensor;
    const bytes = t.nbytes;
    if (!ofDtype || t.dtype.name !== dtype) ofDtype = byDtype[(dtype = t.dtype.name)] ??= { tensors: 0, bytes: 0 };
    if (!ofDevice || t.device !== device) ofDevice = byDevice[(device = t.device)] ??= { tensors: 0, bytes: 0 };
    ofDtype.tensors++;
    ofDtype.bytes += bytes;
    ofDevice.tensors++;
    ofDevice.bytes += bytes;
  }
  const tensorInfoPieces = (): TensorInfoPieces => {
    // each tensor of a pickled module takes its next state-dict path in turn, so pieces go in order
    let statePaths: StatePaths | null = null;
    let writer: TensorInfoWriter | null = null;
    let next = 0;
    const range = (from: number, to: number): number => {
      if (from !== next) throw new Error(`tensor infos are made in order: asked for ${from} after ${next}`);
      statePaths ??= moduleStatePaths(roles);
      return (next = Math.min(to, tensors.length));
    };
    return {
      length: tensors.length,
      items(from, to) {
        const end = range(from, to);
        const out: TensorInfo[] = [];
        for (let i = from; i < end; i++) out.push(tensorInfo(tensors[i]!, sharedStorages, statePaths!));
        return out;
      },
      json(from, to) {
        const end = range(from, to);
        writer ??= new TensorInfoWriter(sharedStorages, statePaths!);
        let text = '';
        for (let i = from; i < end; i++) text += i > from ? `,${writer.json(tensors[i]!)}` : writer.json(tensors[i]!);
        return text;
      },
      utf8(from, to) {
        const end = range(from, to);
        writer ??= new TensorInfoWriter(sharedStorages, statePaths!);
        return writer.utf8(tensors, from, end);
      },
    };
  };
  const tensorInfos = (): TensorInfo[] => tensorInfoPieces().items(0, tensors.length);
  const layout = detectLayout({
    tensors: tensors.map((x) => x.tensor),
    roles,
    fileName: path.basename(file),
    ...(opts.familyRank !== undefined ? { familyRank: opts.familyRank } : {}),
  });
  // numpy files hold named arrays: torch.load never reads them, so "state dict" would mislead
  if (reading.format === 'npz' || reading.format === 'npy') layout.evidence = layout.evidence.map((e) => e.replace(/^state dict /, 'named numpy arrays '));
  if (reading.format === 'onnx') layout.evidence = layout.evidence.map((e) => e.replace(/^state dict /, 'ONNX initializers '));
  const roleInfos: RoleInfo[] = roles.map((r) => ({
    kind: r.kind,
    path: r.path,
    ...(r.entries ? { keys: r.entries.length } : {}),
    ...(r.className ? { className: r.className } : {}),
    ...(r.note ? { note: r.note } : {}),
  }));
  const modules = roles
    .filter((r) => r.kind === 'module')
    .map((r) => ({ path: r.path, className: r.className ?? '', keys: (r.entries ?? []).map((e) => e.key) }));
  const notes = [...reading.notes];
  const treeWidth = opts.treeWidth ?? 64;
  const report: InspectReport = {
    file,
    fileBytes: opts.fileBytes ?? 0,
    format: reading.format,
    records: reading.records,
    layout,
    roles: roleInfos,
    // Built on first read, as `tree` below: convert and diff read the tensors themselves, and a
    // 500,000-tensor file's list is ~60 MB
    get tensors(): TensorInfo[] {
      const infos = tensorInfos();
      Object.defineProperty(this, 'tensors', { value: infos, writable: true, enumerable: true, configurable: true });
      return infos;
    },
    set tensors(infos: TensorInfo[]) {
      Object.defineProperty(this, 'tensors', { value: infos, writable: true, enumerable: true, configurable: true });
    },
    totals: { tensors: tensors.length, storages: storages.count, storageBytes: storages.bytes, byDtype, byDevice },
    ...(modules.length ? { moduleStateDicts: modules } : {}),
    security: securityOf(file, reading, opts.pickleScans),
    // Built on first read (inspect's JSON, the UI's clone, the text view): convert never reads
    // it, and on 100,000 keys the summary and its key trie cost seconds and megabytes.
    get tree(): TreeNode {
      const known = new Map<PyDict, StateDictEntry[]>();
      for (const r of roles) {
        const d = r.kind === 'state-dict' && r.entries ? valueAt(reading.root, r.path) : undefined;
        if (d instanceof PyDict) known.set(d, r.entries!);
      }
      const tree = summariseTree('', reading.root, 0, treeWidth, new Set(), undefined, known);
      Object.defineProperty(this, 'tree', { value: tree, writable: true, enumerable: true, configurable: true });
      return tree;
    },
    set tree(tree: TreeNode) {
      Object.defineProperty(this, 'tree', { value: tree, writable: true, enumerable: true, configurable: true });
    },
    notes,
  };
  // The pickle's globals alone do not say what torch.load does: the format decides first.
  report.loading = loadClaims(report, reading.pickleOpcodes);
  const values = scalarValues(reading.root);
  if (values.length) report.values = values;
  report.security.weightsOnlyLoadable = report.loading.weightsOnly;
  return { file, reading, tensors, roles, report, sharedStorages, tensorInfoPieces, close: () => reading.close() };
}

/**
 * The distinct storages the tensors use (legacy views counted as their root storage): how many,
 * their bytes, and those more than one tensor path uses. Counted by sorting serial numbers: a Map
 * from storage to count was ~28 MB for a 500,000-tensor file.
 */
export function distinctStorages(tensors: readonly TensorAt[]): { count: number; bytes: number; shared: Set<TorchStorage> } {
  const serials = new Float64Array(tensors.length);
  let n = 0;
  let bytes = 0;
  for (let i = 0; i < tensors.length; i++) {
    const { tensor } = tensors[i]!; // indexed: see `analyse`
    if (!tensor.storage) continue;
    const root = rootStorage(tensor.storage);
    serials[n++] = root.serial;
    bytes += root.nbytes;
  }
  const sorted = serials.subarray(0, n).sort();
  let count = 0;
  const sharedSerials = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    if (i > 0 && sorted[i] === sorted[i - 1]) sharedSerials.set(sorted[i]!, (sharedSerials.get(sorted[i]!) ?? 1) + 1);
    else count++;
  }
  const shared = new Set<TorchStorage>();
  if (sharedSerials.size) {
    for (let i = 0; i < tensors.length; i++) {
      const { tensor } = tensors[i]!;
      if (!tensor.storage) continue;
      const root = rootStorage(tensor.storage);
      if (sharedSerials.has(root.serial)) shared.add(root);
    }
    // each shared storage's bytes were added once per tensor path that uses it
    for (const s of shared) bytes -= (sharedSerials.get(s.serial)! - 1) * s.nbytes;
  }
  return { count, bytes, shared };
}

/**
 * Each tensor of a whole pickled module by where `state_dict()` puts it: the module's path, then
 * its key. A tensor the module holds twice (tied weights) has one key per place, in order.
 */
function moduleStatePaths(roles: readonly Role[]): StatePaths {
  const out: StatePaths = new Map();
  for (const r of roles) {
    if (r.kind !== 'module') continue;
    for (const e of r.entries ?? []) {
      const list = out.get(e.tensor) ?? [];
      list.push([...r.path, e.key]);
      out.set(e.tensor, list);
    }
  }
  return out;
}

export function typeName(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof PyFloat) return 'float';
  if (v instanceof PyComplex) return 'complex';
  if (v instanceof PyBytes) return v.mutable ? 'bytearray' : 'bytes';
  if (v instanceof PyDict) return v.ordered ? 'OrderedDict' : 'dict';
  if (v instanceof PyList) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PySet) return v.frozen ? 'frozenset' : 'set';
  if (v instanceof TorchTensor) return v.isParameter ? 'Parameter' : (v.subclass ?? 'tensor');
  if (v instanceof TorchStorage) return 'storage';
  if (v instanceof PyGlobal) return 'global';
  if (v instanceof PyObject) return v.className;
  return 'object';
}

/** The most nodes one summary holds: containers that share one another would repeat without end. */
const MAX_SUMMARY_NODES = 50_000;

/**
 * A bounded summary of the container tree for display: at most `width` children per node and
 * `MAX_SUMMARY_NODES` in all (`budget.left` counts down across the whole tree).
 */
export function summariseTree(
  key: string | number,
  v: PyValue,
  depth: number,
  width: number,
  onPath: Set<object>,
  budget = { left: MAX_SUMMARY_NODES },
  /** state dicts whose entries the caller has already (`findRoles`): not listed again */
  known: ReadonlyMap<PyDict, StateDictEntry[]> = new Map(),
): TreeNode {
  budget.left--;
  const type = typeName(v);
  if (v instanceof TorchTensor) return { key, type, summary: `${v.dtype.name}[${v.shape.join(', ')}] ${v.device}` };
  const numpy = numpyScalarText(v);
  if (numpy) return { key, type: numpy.type, summary: numpy.text };
  // a state dict is summarised from its entries, before `childrenOf` makes a pair per key
  if (v instanceof PyDict && v.size > 0 && depth <= 24 && !onPath.has(v) && budget.left > 0) {
    const sd = known.get(v) ?? asStateDict(v);
    if (sd && sd.some((e) => e.key.includes('.'))) {
      const trie = keyTrie(sd, width);
      const more = Math.max(0, trie.total - width) + (v.size - sd.length);
      return { key, type, summary: `state dict, ${plural(sd.length, 'tensor')}`, children: trie.shown, ...(more ? { more } : {}) };
    }
  }
  const kids = v !== null && typeof v === 'object' && !(v instanceof PyGlobal) ? childrenOf(v) : [];
  if (kids.length === 0 || depth > 24 || onPath.has(v as object) || budget.left <= 0) {
    const summary = v instanceof PyDict || v instanceof PyList || v instanceof PyTuple || v instanceof PySet ? (kids.length ? '…' : 'empty') : pyRepr(v);
    return { key, type, summary };
  }
  onPath.add(v as object);
  const shown = kids.slice(0, width).map(([k, x]) => summariseTree(k, x, depth + 1, width, onPath, budget, known));
  onPath.delete(v as object);
  const node: TreeNode = { key, type, summary: `${kids.length} item${kids.length === 1 ? '' : 's'}`, children: shown };
  if (kids.length > width) node.more = kids.length - width;
  return node;
}
