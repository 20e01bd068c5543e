/**
 * An ImageFolder tree as torchvision.datasets.ImageFolder reads it (torchvision/datasets/folder.py):
 * classes are the sorted names of the root's sub-folders, class index = position in that list;
 * samples are each class folder's files walked in sorted order (`sorted(os.walk(...))`, then sorted
 * file names) whose extension is an image extension. Images load as PIL's `.convert('RGB')` gives
 * them: 8-bit RGB, alpha dropped, grayscale repeated. PNG (pngjs) and JPEG (jpeg-js) are decoded;
 * the other extensions torchvision accepts (.bmp, .ppm, .pgm, .tif, .tiff, .webp) are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { fail } from '../errors.ts';
import { readWholeFile } from '../io/random-access.ts';
import type { RawImage, TestSet } from './test-set.ts';

const DECODED = /\.(png|jpe?g)$/i;
const OTHER_IMAGES = /\.(ppm|bmp|pgm|tif|tiff|webp)$/i;

/** Python's str ordering (code points), which differs from JS's UTF-16 order above U+FFFF. */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d) return d;
  }
  return x.length - y.length;
}

/** Files under `dir` in `sorted(os.walk(dir))` order: by folder path, then by name. */
function walk(dir: string): string[] {
  const groups: [string, string[]][] = [];
  const visit = (d: string, depth: number): void => {
    if (depth > 64) return;
    const files: string[] = [];
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      const isDir = e.isDirectory() || (e.isSymbolicLink() && fs.statSync(full, { throwIfNoEntry: false })?.isDirectory());
      if (isDir) visit(full, depth + 1);
      else files.push(e.name);
    }
    groups.push([d, files.sort(byCodePoint)]);
  };
  visit(dir, 0);
  groups.sort((a, b) => byCodePoint(a[0], b[0]));
  return groups.flatMap(([d, files]) => files.map((f) => path.join(d, f)));
}

export function decodeImage(file: string): RawImage {
  const bytes = readWholeFile(file);
  try {
    if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
      const png = PNG.sync.read(bytes);
      return rgbFromRgba(png.data, png.width, png.height);
    }
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
      return { data: img.data, channels: 3, height: img.height, width: img.width, layout: 'HWC' };
    }
  } catch (e) {
    fail('not-a-checkpoint', `${file}: the image does not decode (${(e as Error).message.split('\n')[0]})`, file);
  }
  return fail('unsupported', `${file}: not a PNG or JPEG image (by its content); convert it to PNG`, file);
}

function rgbFromRgba(rgba: Uint8Array, width: number, height: number): RawImage {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4) {
    out[o++] = rgba[i]!;
    out[o++] = rgba[i + 1]!;
    out[o++] = rgba[i + 2]!;
  }
  return { data: out, channels: 3, height, width, layout: 'HWC' };
}

export function openImageFolder(root: string): TestSet {
  const classes = fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() || (e.isSymbolicLink() && fs.statSync(path.join(root, e.name)).isDirectory()))
    .map((e) => e.name)
    .sort(byCodePoint);
  if (!classes.length) fail('usage', `${root}: no class folders; an ImageFolder test set has one folder per class`, root);
  const files: string[] = [];
  const labels: number[] = [];
  classes.forEach((c, idx) => {
    for (const f of walk(path.join(root, c))) {
      if (OTHER_IMAGES.test(f)) fail('unsupported', `${f}: ${path.extname(f)} images are not decoded by verify; convert the test set to PNG or JPEG`, f);
      if (!DECODED.test(f)) continue;
      files.push(f);
      labels.push(idx);
    }
  });
  const seen = new Set(labels);
  const empty = classes.filter((_, i) => !seen.has(i));
  if (empty.length)
    fail(
      'usage',
      `${root}: no PNG or JPEG images in class folder${empty.length > 1 ? 's' : ''} ${empty.slice(0, 3).join(', ')}; torchvision refuses empty classes too`,
      root,
    );
  return {
    format: 'imagefolder',
    path: root,
    count: files.length,
    labels: Int32Array.from(labels),
    classNames: classes,
    notes: [`${classes.length} classes, ${files.length} images`],
    sample: (i: number) => decodeImage(files[i]!),
    sampleName: (i: number) => files[i]!,
  };
}
