// Every test-set format on a small real sample, checked against what torchvision reads from the same
// files (test/fixtures/verify/expected.json) and against torch's predictions on exactly those inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readNpzArrays } from '../../../main/formats/numpy/npz.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { openCifarSet } from '../../../main/verify/cifar-set.ts';
import { decodeImage, openImageFolder } from '../../../main/verify/image-folder-set.ts';
import { openIdxSet } from '../../../main/verify/idx-set.ts';
import { preprocessInto, resolvePreprocess } from '../../../main/verify/preprocess.ts';
import { runVerify } from '../../../main/verify/run-verify.ts';
import { openTestSet, type RawImage, type TestSet } from '../../../main/verify/test-set.ts';
import { EXPECTED, FX, fx, MODEL, sample, tempDir, TORCH } from './helpers.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const hint = { channels: 1, height: 8, width: 8 };

/** All samples as N×H×W×C bytes, torchvision's layout for CIFAR (`data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)`). */
function hwc(set: TestSet): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < set.count; i++) {
    const s = set.sample(i);
    const out = new Uint8Array(s.data.length);
    const hw = s.height * s.width;
    for (let p = 0; p < hw; p++)
      for (let c = 0; c < s.channels; c++) out[p * s.channels + c] = s.layout === 'CHW' ? s.data[c * hw + p]! : s.data[p * s.channels + c]!;
    parts.push(out);
  }
  return Buffer.concat(parts);
}

test('idx (gzipped, as MNIST is distributed): the bytes and labels torchvision reads', () => {
  const e = EXPECTED['idx']!;
  const set = openTestSet(fx('mnist'), null, hint);
  assert.equal(set.format, 'idx');
  assert.equal(set.count, e['samples']);
  assert.deepEqual(Array.from(set.labels), e['labels']);
  assert.equal(sha(hwc(set)), e['images_sha256']);
  assert.deepEqual(set.sample(0).channels, 1);
  // the same files uncompressed, named by the images file itself
  const dir = tempDir();
  for (const n of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(dir, n), gunzipSync(readFileSync(fx(`mnist/${n}.gz`))));
  const plain = openIdxSet(join(dir, 't10k-images-idx3-ubyte'));
  assert.equal(sha(hwc(plain)), e['images_sha256']);
  // a truncated file and a missing labels file
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), readFileSync(join(dir, 't10k-images-idx3-ubyte')).subarray(0, 1000));
  assert.throws(
    () => openIdxSet(dir),
    (err: CheckpointError) => err.kind === 'truncated' && /header says 23040/.test(err.message),
  );
  const lone = tempDir();
  copyFileSync(fx('mnist/t10k-images-idx3-ubyte.gz'), join(lone, 'train-images-idx3-ubyte.gz'));
  assert.throws(() => openIdxSet(lone), /no labels file beside it \(expected train-labels-idx1-ubyte\.gz\)/);
});

test('CIFAR-10 written as Python 2 cPickle wrote it: pixels, labels and class names as torchvision reads them', () => {
  const e = EXPECTED['cifar10']!;
  const set = openTestSet(fx('cifar-10-batches-py'), null, hint);
  assert.equal(set.format, 'cifar');
  assert.deepEqual([set.count, set.sample(0).channels, set.sample(0).height, set.sample(0).layout], [e['samples'], 3, 32, 'CHW']);
  assert.deepEqual(Array.from(set.labels), e['labels']);
  assert.deepEqual(set.classNames, e['classes']);
  assert.equal(sha(hwc(set)), e['images_hwc_sha256']);
});

test('CIFAR-100 as a Python 3 pickle (protocol 5, numpy _frombuffer): fine labels and names', () => {
  const e = EXPECTED['cifar100']!;
  const set = openCifarSet(fx('cifar-100-python/test'));
  assert.deepEqual(Array.from(set.labels), e['labels']);
  assert.deepEqual(set.classNames, e['classes']);
  assert.equal(sha(hwc(set)), e['images_hwc_sha256']);
  assert.match(set.notes[0]!, /CIFAR-100 \(fine labels\)/);
});

test('ImageFolder: classes, sample order and labels as torchvision.datasets.ImageFolder gives them', () => {
  const e = EXPECTED['imagefolder']!;
  const set = openImageFolder(fx('imagefolder'));
  assert.deepEqual(set.classNames, e['classes']);
  assert.deepEqual(Array.from(set.labels), e['labels']);
  assert.equal(set.count, e['samples']); // notes.txt in class 3 is skipped, as torchvision skips it
  const files = Array.from({ length: set.count }, (_, i) => relative(FX, set.sampleName!(i)));
  assert.deepEqual(files, e['files']);
});

test("PNG decodes exactly as PIL's convert('RGB'); JPEG within the IDCT differences between decoders", () => {
  const exp = readNpzArrays(fx('imagefolder-expected.npz'));
  const files = EXPECTED['imagefolder']!['files'] as string[];
  let worstJpeg = 0;
  files.forEach((f, i) => {
    const mine = decodeImage(join(FX, f));
    const pil = exp.get(`raw_${i}`)!;
    assert.deepEqual([mine.height, mine.width, mine.channels], pil.shape, f);
    if (f.endsWith('.png')) assert.deepEqual(Buffer.from(mine.data as Uint8Array), Buffer.from(pil.data), f);
    else for (let k = 0; k < pil.data.length; k++) worstJpeg = Math.max(worstJpeg, Math.abs(mine.data[k]! - pil.data[k]!));
  });
  assert.equal(worstJpeg, 1, 'jpeg-js and libjpeg round the IDCT differently by one level at most');
});

test('preprocessing matches torchvision Grayscale(1) + Resize((8, 8)) + ToTensor() on the same images', () => {
  const exp = readNpzArrays(fx('imagefolder-expected.npz'));
  const x = new Float32Array(Uint8Array.from(exp.get('x')!.data).buffer);
  const set = openImageFolder(fx('imagefolder'));
  const plan = resolvePreprocess({ name: 'input', elemType: 1, dims: ['batch', 1, 8, 8] }, set.sample(0));
  assert.deepEqual([plan.layout, plan.channels, plan.height, plan.width, plan.resize, plan.scale], ['NCHW', 1, 8, 8, 'bilinear', null]);
  const out = new Float32Array(64);
  let worstPng = 0;
  let worstJpeg = 0;
  const files = EXPECTED['imagefolder']!['files'] as string[];
  for (let i = 0; i < set.count; i++) {
    preprocessInto(set.sample(i), plan, out, 0);
    const d = Math.max(...out.map((v, k) => Math.abs(v - x[i * 64 + k]!)));
    if (files[i]!.endsWith('.png')) worstPng = Math.max(worstPng, d);
    else worstJpeg = Math.max(worstJpeg, d);
  }
  assert.equal(worstPng, 0, 'an 8x8 grayscale PNG goes through unchanged: v / 255 in float32');
  // 32x32 RGB JPEG: decoder differences plus PIL's fixed-point resampling, one 8-bit level at most
  assert.ok(worstJpeg > 0 && worstJpeg <= 1.01 / 255, `max difference ${worstJpeg * 255} levels`);
});

test('each format, end to end: the predictions torch makes on the very same inputs', async () => {
  const run = (data: string, extra = {}) => runVerify({ model: MODEL, data, checkpoint: sample('cpu.pt'), device: 'cpu', ...extra });
  const idx = await run(fx('mnist'));
  assert.deepEqual(idx.runs[0]!.metrics.predictions, EXPECTED['idx']!['torch_predictions']);
  assert.equal(idx.data.format, 'idx');
  // CIFAR: 32x32 RGB of the same 8-bit digits; area resampling and PIL's luma give back those bytes exactly
  for (const dir of ['cifar-10-batches-py', 'cifar-100-python']) {
    const c = await run(fx(dir), { preprocess: { resize: 'area' } });
    assert.deepEqual(c.runs[0]!.metrics.predictions, EXPECTED['cifar10']!['torch_predictions'], dir);
    assert.equal(c.data.preprocess.resize, 'area');
  }
  const folder = await run(fx('imagefolder'));
  const torchPred = EXPECTED['imagefolder']!['torch_predictions'] as number[];
  assert.deepEqual(folder.runs[0]!.metrics.predictions, torchPred);
  assert.deepEqual(folder.data.classNames, EXPECTED['imagefolder']!['classes']);
  // .npz: channel-last uint8 and flat float64 rows under other key names
  const nhwc = await run(fx('digits-nhwc-uint8.npz'));
  assert.deepEqual(nhwc.runs[0]!.metrics.predictions, EXPECTED['npz']!['nhwc_uint8_torch_predictions']);
  assert.match(nhwc.data.notes[0]!, /uint8 \[100, 8, 8, 1\] read as N×H×W×C/);
  const flat = await run(fx('digits-flat-f64.npz'));
  assert.deepEqual(flat.runs[0]!.metrics.predictions, EXPECTED['npz']!['flat_torch_predictions']);
  assert.deepEqual(flat.runs[0]!.metrics.predictions, TORCH.predictions.slice(0, 100));
});

test('ImageFolder refuses formats it cannot decode and empty classes, like torchvision', () => {
  const root = tempDir();
  mkdirSync(join(root, 'a'));
  mkdirSync(join(root, 'b'));
  copyFileSync(fx('imagefolder/0/0004.png'), join(root, 'a', 'x.png'));
  assert.throws(() => openImageFolder(root), /no PNG or JPEG images in class folder b/);
  writeFileSync(join(root, 'b', 'y.bmp'), 'BM');
  assert.throws(
    () => openImageFolder(root),
    (e: CheckpointError) => e.kind === 'unsupported' && /\.bmp images are not decoded by verify/.test(e.message),
  );
  const bad = tempDir();
  mkdirSync(join(bad, 'c'));
  writeFileSync(join(bad, 'c', 'z.png'), 'not a png');
  const set = openImageFolder(bad);
  assert.throws(
    () => set.sample(0),
    (e: CheckpointError) => e.kind === 'unsupported' && /not a PNG or JPEG image/.test(e.message),
  );
});

test('preprocessing: resize modes, channel conversion, layout and normalisation', () => {
  // a 2x2 8-bit RGB image, channel-last
  const img: RawImage = { data: Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]), channels: 3, height: 2, width: 2, layout: 'HWC' };
  const gray = resolvePreprocess({ name: 'x', elemType: 1, dims: [1, 1, 2, 2] }, img);
  const out = new Float32Array(4);
  preprocessInto(img, gray, out, 0);
  // PIL's L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16: red 76, green 150, blue 29, white 255
  assert.deepEqual(
    Array.from(out),
    [76, 150, 29, 255].map((v) => Math.fround(v / 255)),
  );
  const nhwc = resolvePreprocess({ name: 'x', elemType: 1, dims: ['n', 2, 2, 3] }, img, { mean: [0.5], std: [0.5] });
  assert.equal(nhwc.layout, 'NHWC');
  const o2 = new Float32Array(12);
  preprocessInto(img, nhwc, o2, 0);
  assert.deepEqual(Array.from(o2), [1, -1, -1, -1, 1, -1, -1, -1, 1, 1, 1, 1]);
  // area and nearest downscale a 4x4 single-channel float image to 2x2
  const four: RawImage = { data: Float32Array.from({ length: 16 }, (_, i) => i), channels: 1, height: 4, width: 4, layout: 'CHW' };
  const area = resolvePreprocess({ name: 'x', elemType: 1, dims: [1, 1, 2, 2] }, four, { resize: 'area' });
  const o3 = new Float32Array(4);
  preprocessInto(four, area, o3, 0);
  assert.deepEqual(Array.from(o3), [2.5, 4.5, 10.5, 12.5]);
  preprocessInto(four, { ...area, resize: 'nearest' }, o3, 0);
  assert.deepEqual(Array.from(o3), [5, 7, 13, 15]);
  assert.throws(() => resolvePreprocess({ name: 'x', elemType: 1, dims: [1, 3, 2, 2] }, img, { std: [1, 0, 1] }), /--std values must be finite and non-zero/);
});

test('float32 samples of the input size with no scale, mean 0 and std 1 reach the input as they are, bit for bit', () => {
  // the general path's (x - mean) / std in float32 on these values, for mean +0 and std 1, is x itself
  const special = [-0, 0, 1.401298464324817e-45, -3.4028234663852886e38, 1 / 3, Number.NaN, Number.POSITIVE_INFINITY, -1.5];
  const data = Float32Array.from({ length: 3 * 2 * 2 }, (_, i) => special[i % special.length]!);
  const img: RawImage = { data, channels: 3, height: 2, width: 2, layout: 'CHW' };
  const plan = resolvePreprocess({ name: 'x', elemType: 1, dims: ['N', '?', '?', '?'] }, img);
  assert.deepEqual([plan.layout, plan.channels, plan.height, plan.width, plan.scale, plan.mean, plan.std], ['NCHW', 3, 2, 2, null, [0], [1]]);
  const out = new Float32Array(2 * 12).fill(7);
  preprocessInto(img, plan, out, 12);
  assert.deepEqual(new Uint32Array(out.buffer, 48), new Uint32Array(data.buffer), 'the same bits, -0 and NaN included');
  assert.deepEqual(Array.from(out.subarray(0, 12)), Array(12).fill(7), 'nothing written before the offset');
  const general = Array.from(data, (x) => Math.fround(Math.fround(Math.fround(x) - 0) / 1));
  assert.deepEqual(Array.from(out.subarray(12)), general);
  // a mean of -0 turns -0 into +0 in float32 ((-0) - (-0) = +0), so it takes the general path
  const negZero = resolvePreprocess({ name: 'x', elemType: 1, dims: ['N', '?', '?', '?'] }, img, { mean: [-0] });
  preprocessInto(img, negZero, out, 0);
  assert.ok(Object.is(out[0], 0) && Object.is(data[0], -0));
});
