import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The sample workspace (DigitsCNN trained by torch 1.13 on sklearn digits) and verify's own fixtures. */
export const SAMPLE = fileURLToPath(new URL('../../../build/sample-workspace/digits-cnn/', import.meta.url));
export const FX = fileURLToPath(new URL('../../fixtures/verify/', import.meta.url));
export const sample = (p: string): string => join(SAMPLE, p);
export const fx = (p: string): string => join(FX, p);

export const MODEL = sample('model.onnx');
export const NPZ = sample('digits-test.npz');

/** What torch 1.13 measured on the test split: accuracy and the predicted class of every sample. */
export const TORCH = JSON.parse(readFileSync(sample('accuracy.json'), 'utf8')) as { samples: number; accuracy: number; predictions: number[] };

/** What torchvision and torch made of verify's test-set fixtures (test/fixtures/verify/generate_verify.py). */
export const EXPECTED = JSON.parse(readFileSync(fx('expected.json'), 'utf8')) as Record<string, Record<string, unknown>>;

export function tempDir(prefix = 'ckpt-verify-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
