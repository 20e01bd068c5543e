// A tensor whose recipe arguments are made per read (header tensors, canonical zip tensors) has
// its size and stride tuples and hooks dict written without memo entries: the bytes must be the
// same as writing them as shared objects, memo indexes included (tied tensors, storages after them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickleValue, type PickleWriterOptions } from '../../../../main/formats/pickle/pickler.ts';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { PyDict, PyGlobal, PyList, PyTuple } from '../../../../main/formats/values/python-values.ts';
import { TorchTensor, type TorchStorage } from '../../../../main/formats/values/torch-values.ts';

const storageId = (s: TorchStorage): PyTuple => new PyTuple(['storage', new PyGlobal('torch', s.storageType), s.key, 'cpu', s.numel]);

test('fresh recipe arguments give the bytes the memoized ones give', () => {
  for (const file of ['test/fixtures/safetensors/dtypes.safetensors', 'test/fixtures/torch/cpu_state_dict.pt']) {
    const ck = openCheckpoint(file);
    try {
      const tensors = ck.tensors.map((t) => t.tensor).filter((t) => t.argsAreMadePerRead);
      assert.ok(tensors.length >= 2, `${file}: tensors without a recipe of their own`);
      // tied entries (the same tensor twice) and a list after them: BINGETs must name the same indexes
      const root = new PyDict(true);
      tensors.forEach((t, i) => root.set(`t${i}`, t));
      root.set('tied', new PyList([tensors[0]!, tensors[1]!, new PyTuple([1, 2])]));
      const plain: PickleWriterOptions = { storageId, tensorRecipe: (t: TorchTensor) => ({ rebuild: t.rebuild, args: t.args }) };
      // the default writes the plain arguments from the tensor's fields (made by no one)
      const fresh = pickleValue(root, { storageId });
      assert.deepEqual(Buffer.from(fresh), Buffer.from(pickleValue(root, plain)), file);
      // …the same bytes as the arguments made per read, given as fresh
      const made: PickleWriterOptions = { storageId, tensorRecipe: (t: TorchTensor) => ({ rebuild: t.rebuild, args: t.args, freshArgs: true }) };
      assert.deepEqual(Buffer.from(fresh), Buffer.from(pickleValue(root, made)), file);
      assert.ok(
        Buffer.from(fresh).includes(Buffer.from([0x68])) || Buffer.from(fresh).includes(Buffer.from([0x6a])),
        'the tied tensors are written as memo gets',
      );
    } finally {
      ck.close();
    }
  }
});
