// What the app says a file about to be replaced holds, on the sample workspace (written by
// torch 1.13), and where the output goes when no path is given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeExisting } from '../../../main/convert/describe-existing.ts';
import { outputFiles } from '../../../main/convert/plan.ts';
import { NO_RULES } from '../../../shared/presets.ts';
import { SAMPLE, tempDir } from '../service/helpers.ts';

const digits = path.join(SAMPLE, 'digits-cnn');

test('a checkpoint is named by its layout, roles, tensors and devices', () => {
  const dp = describeExisting(path.join(digits, 'dp.pt'))!;
  assert.equal(dp.what, 'a DataParallel state dict: 16 tensors on cuda:0');
  assert.equal(dp.bytes, fs.statSync(path.join(digits, 'dp.pt')).size);
  assert.equal(dp.modified, fs.statSync(path.join(digits, 'dp.pt')).mtime.toISOString());
  assert.equal(describeExisting(path.join(digits, 'checkpoint.pth.tar'))!.what, 'a DataParallel state dict + optimizer state: 46 tensors on cuda:0');
  assert.equal(describeExisting(path.join(digits, 'whole_model_dp.pt'))!.what, 'a DataParallel whole pickled model: 16 tensors on cpu');
});

test('anything else says what it is not, without the path twice; a missing file is null', () => {
  assert.match(
    describeExisting(path.join(digits, 'README.md'))!.what,
    /^not a checkpoint ckpt reads \(not a PyTorch checkpoint, safetensors, ONNX or numpy file \(starts with 23 20/,
  );
  assert.equal(describeExisting(path.join(digits, 'ddp'))!.what, 'a folder');
  const dir = tempDir('existing');
  fs.writeFileSync(path.join(dir, 'empty.pt'), '');
  assert.match(describeExisting(path.join(dir, 'empty.pt'))!.what, /^not a checkpoint ckpt reads \(/);
  assert.equal(describeExisting(path.join(dir, 'gone.pt')), null);
});

test('the default output keeps a double extension whole: checkpoint.pth.tar → checkpoint.cpu.pth.tar', () => {
  const cpu = { ...NO_RULES, preset: { name: 'cpu' as const } };
  assert.equal(outputFiles('/d/checkpoint.pth.tar', null, cpu)[0]!.file, '/d/checkpoint.cpu.pth.tar');
  assert.equal(outputFiles('/d/dp.pt', null, cpu)[0]!.file, '/d/dp.cpu.pt');
  assert.equal(outputFiles('/d/model.tar', null, cpu)[0]!.file, '/d/model.cpu.tar');
});
