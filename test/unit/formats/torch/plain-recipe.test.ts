// A plain tensor of a torch.save file (`_rebuild_tensor_v2(storage, offset, size, stride, False,
// OrderedDict())`) does not keep its argument list: `TorchTensor.args` rebuilds it. The rebuilt
// list must be the recipe the file holds, argument for argument.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { openTorchArchive, unpickleRecord } from '../../../../main/formats/torch/torch-zip.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../../../main/formats/pickle/unpickler.ts';
import { FileReader } from '../../../../main/io/random-access.ts';
import { PyDict, PyList, PyObject, PyPersistent, PySet, PyTuple, type PyValue } from '../../../../main/formats/values/python-values.ts';
import { TorchStorage, TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { walkTensors } from '../../../../main/checkpoint/tree.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';

const DIR = 'test/fixtures/torch/';

/** The recipe as text: storages by key, tuples by items, dicts by kind and entries. */
function recipe(v: PyValue): string {
  if (v instanceof TorchStorage) return `storage(${v.key})`;
  if (v instanceof PyPersistent && v.pid instanceof PyTuple) return `storage(${String(v.pid.items[2])})`;
  if (v instanceof PyTuple) return `(${v.items.map(recipe).join(',')})`;
  if (v instanceof PyDict) return `${v.ordered ? 'OrderedDict' : 'dict'}[${v.size}]${v.attrs ? '+attrs' : ''}`;
  if (v instanceof PyObject) return `${v.className}(${v.args.map(recipe).join(',')})`;
  return JSON.stringify(v) ?? String(v);
}

/** Every `_rebuild_tensor_v2(...)` call of a pickle read without torch's hooks, in file order. */
function rawRecipes(v: PyValue, out: string[] = [], seen = new Set<object>()): string[] {
  if (v === null || typeof v !== 'object' || seen.has(v)) return out;
  seen.add(v);
  if (v instanceof PyObject) {
    for (const a of v.args) rawRecipes(a, out, seen);
    if (v.className === 'torch._utils._rebuild_tensor_v2') out.push(v.args.map(recipe).join(' '));
    if (v.state !== undefined) rawRecipes(v.state, out, seen);
    for (const x of v.listItems) rawRecipes(x, out, seen);
    for (const [, x] of v.dictItems) rawRecipes(x, out, seen);
  } else if (v instanceof PyDict) {
    for (const [, x] of v.entries) rawRecipes(x, out, seen);
    if (v.attrs) rawRecipes(v.attrs, out, seen);
  } else if (v instanceof PyTuple || v instanceof PyList || v instanceof PySet) for (const x of v.items) rawRecipes(x, out, seen);
  return out;
}

test('torch.save fixtures: every plain tensor rebuilds the recipe its file holds', () => {
  let plain = 0;
  for (const f of readdirSync(DIR).filter((x) => x.endsWith('.pt'))) {
    const reader = new FileReader(DIR + f);
    if (!ZipArchive.looksLikeZip(reader)) {
      reader.close(); // the legacy format: its tensors keep the arguments they were read with
      continue;
    }
    const archive = openTorchArchive(reader);
    try {
      if (!archive.zip.get(`${archive.prefix}data.pkl`)) continue;
      const root = unpickleRecord(archive, 'data.pkl', new Map()).value;
      const raw = unpickle(PickleInput.fromBytes(archive.zip.readEntry(archive.zip.get(`${archive.prefix}data.pkl`)!), f)).value;
      const expected = new Set(rawRecipes(raw));
      for (const { tensor } of walkTensors(root)) {
        const inner = tensor.isParameter && tensor.args[0] instanceof TorchTensor ? tensor.args[0] : tensor;
        if (inner.rebuild.name !== '_rebuild_tensor_v2') continue;
        const text = inner.args.map(recipe).join(' ');
        assert.ok(expected.has(text), `${f}: ${text} is not among the file's recipes`);
        plain++;
      }
    } finally {
      archive.zip.reader.close();
    }
  }
  assert.ok(plain > 20, `${plain} tensors checked`);
});
