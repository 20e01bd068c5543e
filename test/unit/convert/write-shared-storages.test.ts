// With the output's shared storages known, the writer keeps lookup entries only for them (and the
// tensors on them): the file must be byte for byte what it writes without that knowledge, for tied
// tensors (one tensor at two keys), views of one storage and single-use storages alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { distinctStorages } from '../../../main/checkpoint/inspect.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { writeTorchCheckpoint } from '../../../main/convert/write-checkpoint.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { PyDict, PyList } from '../../../main/formats/values/python-values.ts';

function written(tree: PyDict, shared: boolean): Buffer {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-shared-')), 'out.pt');
  const fd = fs.openSync(file, 'w');
  try {
    const sharedStorages = distinctStorages(walkTensors(tree)).shared;
    writeTorchCheckpoint(fd, tree, { archiveName: 'out', location: () => 'cpu', ...(shared ? { sharedStorages } : {}) });
  } finally {
    fs.closeSync(fd);
  }
  const bytes = fs.readFileSync(file);
  fs.rmSync(path.dirname(file), { recursive: true });
  return bytes;
}

test('writing with the shared storages known gives the same bytes: tied tensors, views, single-use storages', () => {
  for (const file of ['test/fixtures/torch/views.pt', 'test/fixtures/safetensors/dtypes.safetensors']) {
    const ck = openCheckpoint(file);
    try {
      const tensors = ck.tensors.map((t) => t.tensor);
      const tree = new PyDict(true);
      tensors.forEach((t, i) => tree.set(`t${i}`, t));
      // one tensor twice more (tied weights), in a list after the dict's own entries
      tree.set('tied', new PyList([tensors[0]!, tensors[tensors.length - 1]!]));
      assert.ok(distinctStorages(walkTensors(tree)).shared.size > 0, `${file}: some storage is shared`);
      assert.deepEqual(written(tree, true), written(tree, false), file);
    } finally {
      ck.close();
    }
  }
});
