// The Verify view's guesses from the checkpoint's folder, on the layouts of the test sets
// `ckpt verify` reads (test/fixtures/verify holds one of each) and on ambiguous folders.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type FolderEntry, graphIn, testSetIn } from '../../../renderer/src/lib/verify-files.ts';
import { openTestSet } from '../../../main/verify/test-set.ts';

const VERIFY = fileURLToPath(new URL('../../fixtures/verify/', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../build/sample-workspace/digits-cnn/', import.meta.url));
const list = (dir: string): FolderEntry[] => readdirSync(dir, { withFileTypes: true }).map((e) => ({ name: e.name, kind: e.isDirectory() ? 'dir' : 'file' }));
const files = (...names: string[]): FolderEntry[] => names.map((name) => ({ name, kind: 'file' }));
const HINT = { channels: null, height: null, width: null };

test('the sample workspace: its model.onnx and digits-test.npz', () => {
  assert.equal(graphIn(list(SAMPLE)), 'model.onnx');
  assert.equal(testSetIn(list(SAMPLE)), 'digits-test.npz');
});

test('each guess in the fixtures is a path verify opens as a test set of the right format', () => {
  const cases: [string, string, string][] = [
    ['mnist', 't10k-images-idx3-ubyte.gz', 'idx'],
    ['cifar-10-batches-py', '', 'cifar'],
    ['cifar-100-python', '', 'cifar'],
  ];
  for (const [dir, want, format] of cases) {
    const got = testSetIn(list(join(VERIFY, dir)));
    assert.equal(got, want, dir);
    assert.equal(openTestSet(join(VERIFY, dir, got!), null, HINT).format, format, dir);
  }
  // a folder beside the checkpoint named as a test set: the fixtures' imagefolder under test/
  assert.equal(testSetIn([...files('model.pt'), { name: 'test', kind: 'dir' }]), 'test');
  assert.equal(openTestSet(join(VERIFY, 'imagefolder'), null, HINT).format, 'imagefolder');
  assert.equal(testSetIn([...files('model.pt'), { name: 'mnist', kind: 'dir' }]), 'mnist');
});

test('MNIST train and test idx files: the test split', () => {
  assert.equal(
    testSetIn(files('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')),
    't10k-images-idx3-ubyte',
  );
});

test('ambiguous or absent: no guess', () => {
  assert.equal(testSetIn(files('a.npz', 'b.npz')), null);
  assert.equal(testSetIn(files('dp.pt', 'notes.txt')), null);
  assert.equal(
    testSetIn([
      { name: 'test', kind: 'dir' },
      { name: 'val', kind: 'dir' },
    ]),
    null,
  );
  assert.equal(graphIn(files('a.onnx', 'b.onnx')), null);
  assert.equal(graphIn([{ name: 'x.onnx', kind: 'dir' }]), null);
});
