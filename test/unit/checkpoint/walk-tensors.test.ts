// walkTensors gives each tensor's path as a fresh array made from its container's path and its
// key: the paths must be what a walk with a path array per tensor gave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { someTensor, walkTensors } from '../../../main/checkpoint/tree.ts';
import { isShardTensor } from '../../../main/inputs/placements.ts';
import { openFormat } from '../../../main/formats/open-format.ts';
import type { TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { PyDict, PyList, PyTuple } from '../../../main/formats/values/python-values.ts';

test('walkTensors: nested, tied and root tensors get the paths torch.load would reach them by', () => {
  const ck = openCheckpoint('test/fixtures/torch/training_checkpoint.pt');
  try {
    const [a, b] = walkTensors(ck.reading.root).map((t) => t.tensor);
    assert.ok(a && b);
    const inner = new PyDict();
    inner.set('w', a);
    inner.set(3, b);
    const root = new PyDict();
    root.set('model', inner);
    root.set('tied', new PyList([a, new PyTuple([b]), inner]));
    const found = walkTensors(root);
    assert.deepEqual(
      found.map((t) => t.path),
      [
        ['model', 'w'],
        ['model', 3],
        ['tied', 0],
        ['tied', 1, 0],
        ['tied', 2, 'w'],
        ['tied', 2, 3],
      ],
    );
    assert.deepEqual(
      found.map((t) => t.tensor),
      [a, b, a, b, a, b],
    );
    // each read is a new array: changing one changes no other tensor's path
    found[0]!.path.push('changed');
    assert.deepEqual(found[0]!.path, ['model', 'w']);
    assert.deepEqual(
      walkTensors(a).map((t) => t.path),
      [[]],
      'a tensor at the root has the empty path',
    );
  } finally {
    ck.close();
  }
});

test('someTensor finds what walkTensors finds: shard tensors of FSDP rank files, none in plain files', () => {
  const files = [
    'test/fixtures/reshard/mesh2d/rank0.pt',
    'test/fixtures/torch2/fsdp_sharded/rank0.pt',
    'test/fixtures/torch/training_checkpoint.pt',
    'test/fixtures/torch/nested_containers.pt',
    'test/fixtures/torch/whole_model.pt',
    'test/fixtures/torch/views.pt',
  ];
  const tests: [string, (t: TorchTensor) => boolean][] = [
    ['a shard', isShardTensor],
    ['any', () => true],
    ['on cuda', (t) => t.device.startsWith('cuda')],
    ['of 2 dims', (t) => t.shape.length === 2],
  ];
  let shards = 0;
  for (const file of files) {
    const reading = openFormat(file);
    try {
      for (const [name, pred] of tests) {
        const want = walkTensors(reading.root).some((t) => pred(t.tensor));
        assert.equal(someTensor(reading.root, pred), want, `${file}: ${name}`);
        if (name === 'a shard' && want) shards++;
      }
    } finally {
      reading.close();
    }
  }
  assert.equal(shards, 2, 'each rank file holds shard tensors');
});
