import { fail } from '../../errors.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { PyDict, PyList, PyObject, PyTuple, type PyValue } from '../values/python-values.ts';
import { rebuildTensor } from './torch-pickle.ts';
import { contiguousStrides } from '../values/torch-values.ts';
import { PyGlobal } from '../values/python-values.ts';
import { globalRefs, readRecords, StorageTable, unpickleRecord, type TorchArchive } from './torch-zip.ts';
import { TorchStorage } from '../values/torch-values.ts';
import { dtypeByName } from '../../../shared/dtypes.ts';

/**
 * TorchScript archives (torch.jit.save): the same zip container as torch.save, with the module
 * object tree in `data.pkl` (classes under `__torch__.`), tensors shared with `constants.pkl`
 * under `constants/`, and the compiled code under `code/` (torch/csrc/jit/serialization/export_module.cpp).
 * Mobile lite-interpreter files add `bytecode.pkl`. The 1.0/1.1 format keeps a `model.json`.
 */
export function isTorchScript(a: TorchArchive): boolean {
  const { zip, prefix } = a;
  if (zip.get(prefix + 'constants.pkl') || zip.get(prefix + 'model.json') || zip.get(prefix + 'bytecode.pkl')) return true;
  // one folder name, not one concatenation per record (100,000 records in a state dict of small tensors)
  const code = prefix + 'code/';
  return zip.entries.some((e) => e.name.startsWith(code));
}

export function readTorchScript(a: TorchArchive): FormatReading {
  const records = readRecords(a);
  const code = a.prefix + 'code/';
  const codeFiles = a.zip.entries.filter((e) => e.name.startsWith(code) && !e.name.endsWith('.debug_pkl')).map((e) => e.name.slice(a.prefix.length));
  if (a.zip.get(a.prefix + 'model.json')) return readModelJson(a, records, codeFiles);
  const storages = new StorageTable();
  const constStorages = new StorageTable();
  let constants: PyValue | null = null;
  const globals = [];
  if (a.zip.get(a.prefix + 'constants.pkl')) {
    const constantsDir = a.prefix + 'constants/';
    const c = unpickleRecord(a, 'constants.pkl', constStorages, a.zip.entries.some((e) => e.name.startsWith(constantsDir)) ? 'constants/' : 'data/');
    constants = c.value;
    globals.push(...globalRefs(c, 'constants.pkl'));
  }
  const main = unpickleRecord(a, 'data.pkl', storages);
  globals.push(...globalRefs(main, 'data.pkl'));
  return {
    format: 'torchscript',
    records: { ...records, pickle_protocol: String(main.protocol), code_files: String(codeFiles.length) },
    root: main.value,
    globals,
    torchscript: { codeFiles, constants },
    notes: ['TorchScript archive: the module tree is shown; load it with torch.jit.load, not torch.load'],
    close: () => a.zip.reader.close(),
  };
}

/** The 1.0/1.1 format: `model.json` (a protobuf ModelDef as JSON) names `tensors/<n>` records. */
function readModelJson(a: TorchArchive, records: Record<string, string>, codeFiles: string[]): FormatReading {
  const file = a.zip.reader.name;
  let model: { mainModule?: ModuleDef; tensors?: TensorDef[] };
  try {
    model = JSON.parse(a.zip.readText(a.prefix + 'model.json') ?? '{}');
  } catch {
    fail('not-a-checkpoint', `${file}: model.json is not valid JSON`, file);
  }
  const storages = new Map<string, TorchStorage>();
  const tensors = (model.tensors ?? []).map((t, i) => {
    const dtype =
      dtypeByName(
        String(t.dataType ?? 'FLOAT')
          .toLowerCase()
          .replace('float', 'float32')
          .replace('double', 'float64')
          .replace('int64', 'int64'),
      ) ?? dtypeByName('float32')!;
    const key = t.data?.key ?? `tensors/${i}`;
    const entry = a.zip.get(a.prefix + key);
    if (!entry) fail('truncated', `${file}: tensor record ${key} is missing`, file);
    const shape = (t.dims ?? []).map(Number);
    const stride = t.strides ? t.strides.map(Number) : contiguousStrides(shape);
    let s = storages.get(key);
    if (!s) {
      s = new TorchStorage(key, dtype.storage ?? 'UntypedStorage', dtype, t.device ?? 'cpu', Math.floor(entry.uncompressedSize / dtype.size), () =>
        a.zip.dataRange(entry),
      );
      storages.set(key, s);
    }
    return rebuildTensor(
      new PyGlobal('torch._utils', '_rebuild_tensor_v2'),
      [s, Number(t.offset ?? 0), new PyTuple(shape), new PyTuple(stride), t.requiresGrad === true, new PyDict(true)],
      file,
    )!;
  });
  // The module tree as TorchScript objects (what torch.jit.load builds): parameters are attributes
  // of `__torch__.*` objects, so the state dict keys are their dotted paths. Tensors no
  // parameter names are the constants table.
  const used = new Set<number>();
  const toModule = (m: ModuleDef | undefined, name: string): PyObject => {
    const o = new PyObject(new PyGlobal('__torch__', name || 'Module'), [], 'newobj');
    const d = new PyDict(true);
    for (const p of m?.parameters ?? []) {
      used.add(Number(p.tensorId));
      d.set(p.name, tensors[Number(p.tensorId)] ?? null);
    }
    for (const sub of m?.submodules ?? []) d.set(sub.name, toModule(sub, sub.name));
    o.state = d;
    return o;
  };
  const root = toModule(model.mainModule, model.mainModule?.name ?? '');
  const constants = tensors.filter((_, i) => !used.has(i));
  return {
    format: 'torchscript',
    records: { ...records, layout: 'model.json (torch 1.0/1.1)', code_files: String(codeFiles.length) },
    root,
    globals: [],
    torchscript: { codeFiles, constants: constants.length ? new PyList(constants) : null },
    notes: ['TorchScript archive in the torch 1.0/1.1 model.json layout'],
    close: () => a.zip.reader.close(),
  };
}

interface ModuleDef {
  name: string;
  parameters?: { name: string; tensorId: string | number }[];
  submodules?: ModuleDef[];
}
interface TensorDef {
  dims?: (string | number)[];
  strides?: (string | number)[];
  offset?: string | number;
  dataType?: string;
  requiresGrad?: boolean;
  device?: string;
  data?: { key: string };
}
