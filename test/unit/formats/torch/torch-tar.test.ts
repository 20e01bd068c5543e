// The torch 0.1.x tar format (torch/serialization.py `_legacy_load.legacy_load`), from a file
// written to that layout by test/fixtures/tar/generate_tar.py and loaded by real torch 1.13.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { readTensorBytes } from '../../../../main/checkpoint/tensor-bytes.ts';
import { valueAt } from '../../../../main/checkpoint/tree.ts';

const file = new URL('../../../fixtures/tar/legacy_tar.pt', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(file.replace(/\.pt$/, '.expected.json'), 'utf8')) as {
  epoch: number;
  note: string;
  tensors: Record<string, { dtype: string; shape: number[]; stride: number[]; sha256: string }>;
};

test('the tar format reads as torch 1.13 read it: tensors, views of storages, values', () => {
  const c = openCheckpoint(file);
  try {
    assert.equal(c.report.format, 'torch-tar');
    assert.equal(valueAt(c.reading.root, ['epoch']), expected.epoch);
    assert.equal(valueAt(c.reading.root, ['note']), expected.note);
    const byName = new Map(c.tensors.map((t) => [t.path.at(-1), t.tensor]));
    assert.equal(byName.size, Object.keys(expected.tensors).length);
    for (const [name, e] of Object.entries(expected.tensors)) {
      const t = byName.get(name);
      assert.ok(t, name);
      assert.equal(t.dtype.name, e.dtype, name);
      assert.deepEqual(t.shape, e.shape, name);
      assert.deepEqual(t.stride, e.stride, name);
      assert.equal(createHash('sha256').update(readTensorBytes(t)).digest('hex'), e.sha256, `${name} values`);
    }
    // the view storage is a window of its root, so the matrix and the view share bytes
    assert.ok(c.report.tensors.find((t) => t.path.at(-1) === 'view')!.shared);
  } finally {
    c.close();
  }
});
