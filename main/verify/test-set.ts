/**
 * A labelled test set, read lazily sample by sample, and the detection of its format from what is
 * at the path: a `.npz` (x, y), MNIST-style idx files, CIFAR-10/100 python batches, or an
 * ImageFolder tree (one folder per class, as torchvision.datasets.ImageFolder reads it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestSetFormat } from '../../shared/verify.ts';
import { asCheckpointError, fail } from '../errors.ts';
import { openCifarSet } from './cifar-set.ts';
import { openIdxSet, findIdxImages } from './idx-set.ts';
import { openImageFolder } from './image-folder-set.ts';
import { openNpzSet } from './npz-set.ts';

/** One decoded sample before preprocessing: 8-bit or float values, channel-major or channel-last. */
export interface RawImage {
  data: Uint8Array | Float32Array;
  channels: number;
  height: number;
  width: number;
  layout: 'CHW' | 'HWC';
}

export interface TestSet {
  format: TestSetFormat;
  path: string;
  count: number;
  labels: Int32Array;
  classNames: string[] | null;
  sample(i: number): RawImage;
  /** where sample i comes from, when it has a name of its own (an ImageFolder file) */
  sampleName?(i: number): string;
  notes: string[];
}

/** What the graph's input wants, for arrays whose layout is ambiguous (a flat N×D array, N×C×H×W vs N×H×W×C). */
export interface ShapeHint {
  channels: number | null;
  height: number | null;
  width: number | null;
}

export function openTestSet(p: string, format: TestSetFormat | null | undefined, hint: ShapeHint): TestSet {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw asCheckpointError(e, p);
  }
  const kind = format ?? detect(p, st);
  switch (kind) {
    case 'npz':
      return openNpzSet(p, hint);
    case 'idx':
      return openIdxSet(p);
    case 'cifar':
      return openCifarSet(p);
    case 'imagefolder':
      return openImageFolder(p);
  }
}

function detect(p: string, st: fs.Stats): TestSetFormat {
  if (st.isDirectory()) {
    const names = fs.readdirSync(p);
    if (names.includes('test_batch') || names.includes('data_batch_1') || (names.includes('test') && names.includes('meta'))) return 'cifar';
    if (findIdxImages(p, names)) return 'idx';
    if (
      fs
        .readdirSync(p, { withFileTypes: true })
        .some((e) => e.isDirectory() || (e.isSymbolicLink() && fs.statSync(path.join(p, e.name), { throwIfNoEntry: false })?.isDirectory()))
    )
      return 'imagefolder';
    fail('usage', `${p}: no test set found here (expected class folders of images, idx files, or CIFAR batches); pass a .npz, a folder, or --data-format`, p);
  }
  if (/\.npz$/i.test(p)) return 'npz';
  if (/idx\d-ubyte(\.gz)?$/i.test(p)) return 'idx';
  const head = Buffer.alloc(4);
  const fd = fs.openSync(p, 'r');
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head[0] === 0x50 && head[1] === 0x4b) return 'npz';
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'cifar';
  if (head[0] === 0 && head[1] === 0 && head[3]! >= 1 && head[3]! <= 4) return 'idx';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'idx';
  return fail('usage', `${p}: not a test set verify reads (.npz, idx, CIFAR python batch, or a folder of class folders)`, p);
}
