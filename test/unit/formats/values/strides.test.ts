// The one row-major stride rule, checked against what torch 1.13 reports for new tensors
// (`torch.empty(*shape).stride()`), zero-sized dimensions included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contiguousStrides } from '../../../../main/formats/values/torch-values.ts';

test('contiguousStrides equals torch.empty(shape).stride(), zero-sized dimensions included', () => {
  const torchSaw: [number[], number[]][] = [
    [[], []],
    [[7], [1]],
    [
      [4, 3],
      [3, 1],
    ],
    [
      [2, 3, 4],
      [12, 4, 1],
    ],
    [
      [5, 0],
      [1, 1],
    ],
    [
      [2, 0, 3],
      [3, 3, 1],
    ],
    [
      [0, 4],
      [4, 1],
    ],
  ];
  for (const [shape, stride] of torchSaw) assert.deepEqual(contiguousStrides(shape), stride, `shape [${shape}]`);
});
