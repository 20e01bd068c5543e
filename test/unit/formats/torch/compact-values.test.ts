// The tensors and storages a torch.save zip file makes keep only the fields that differ from one to
// the next (torch-pickle.ts `plainPickledTensor`, torch-zip.ts `ZipRecordStorages`): to every
// reader they must still be TorchTensors and TorchStorages, with the same values and messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { openTorchArchive, readTorchZip } from '../../../../main/formats/torch/torch-zip.ts';
import { FileReader } from '../../../../main/io/random-access.ts';
import { TorchStorage, TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { walkTensors } from '../../../../main/checkpoint/tree.ts';

const FILE = 'test/fixtures/torch/dp_state_dict.pt';

function tensorsOf(file: string): TorchTensor[] {
  const reading = readTorchZip(openTorchArchive(new FileReader(file)));
  return walkTensors(reading.root).map((t) => t.tensor);
}

test('plain tensors and zip storages are TorchTensors and TorchStorages to instanceof, constructor and every field', () => {
  const tensors = tensorsOf(FILE);
  assert.ok(tensors.length > 0);
  for (const t of tensors) {
    assert.ok(t instanceof TorchTensor);
    assert.equal(t.constructor, TorchTensor, 'messages name the class TorchTensor');
    assert.equal(t.kind, 'dense');
    assert.equal(t.requiresGrad, false);
    assert.equal(t.isParameter, false);
    assert.equal(t.subclass, null);
    assert.equal(t.pyState, undefined);
    assert.equal(t.argsAreMadePerRead, true);
    assert.equal(t.dtype, t.storage!.dtype);
    const s = t.storage!;
    assert.ok(s instanceof TorchStorage);
    assert.equal(s.constructor, TorchStorage);
    assert.equal(s.storageModule, 'torch');
    assert.equal(s.viewOf, null);
    assert.equal(s.location, 'cpu');
    assert.match(s.storageType, /Storage$/);
    const range = s.locate();
    assert.equal(range.length, s.nbytes);
    // the CRC the archive recorded, read from the entry: that of the storage's bytes, unsigned
    assert.equal(s.recordCrc, zlib.crc32(range.reader.read(range.offset, range.length)));
  }
});

test('a field set on one plain tensor (BUILD, Parameter) is that tensor’s own; the others keep the defaults', () => {
  const [a, b] = tensorsOf(FILE);
  a!.requiresGrad = true;
  a!.pyState = 'state';
  assert.equal(a!.requiresGrad, true);
  assert.equal(a!.pyState, 'state');
  assert.equal(b!.requiresGrad, false);
  assert.equal(b!.pyState, undefined);
  assert.equal(Object.getPrototypeOf(a).requiresGrad, false);
});
