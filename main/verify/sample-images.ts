/**
 * Small pictures of test samples for the report (the Verify view shows the samples whose
 * prediction changed): 8-bit grey or RGB, at most 64 pixels on a side, base64.
 */
import type { RunResult, SampleExample, SampleImage } from '../../shared/verify.ts';
import type { RawImage, TestSet } from './test-set.ts';

export const MAX_SIDE = 64;
export const MAX_CHANGED = 16;
export const MAX_WRONG = 8;

/** The raw sample as 8-bit pixels: 8-bit data as is, floats in [0, 1] times 255, others stretched to their range. */
export function sampleImage(raw: RawImage): SampleImage {
  const { data, height: h, width: w } = raw;
  const c = raw.channels >= 3 ? 3 : 1;
  const scale = Math.min(1, MAX_SIDE / Math.max(h, w));
  const oh = Math.max(1, Math.round(h * scale));
  const ow = Math.max(1, Math.round(w * scale));
  let lo = 0;
  let k = 1;
  if (!(data instanceof Uint8Array)) {
    let min = Infinity;
    let max = -Infinity;
    for (const v of data) {
      if (!Number.isFinite(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (min >= 0 && max <= 1) k = 255;
    else if (!(min >= 0 && max <= 255)) {
      lo = Number.isFinite(min) ? min : 0;
      k = max > min ? 255 / (max - min) : 0;
    }
  }
  const at = (y: number, x: number, ch: number): number => (raw.layout === 'CHW' ? (ch * h + y) * w + x : (y * w + x) * raw.channels + ch);
  const out = new Uint8Array(oh * ow * c);
  for (let y = 0; y < oh; y++) {
    const sy = Math.min(h - 1, Math.floor(y / scale));
    for (let x = 0; x < ow; x++) {
      const sx = Math.min(w - 1, Math.floor(x / scale));
      for (let ch = 0; ch < c; ch++) {
        const v = (data[at(sy, sx, ch)]! - lo) * k;
        out[(y * ow + x) * c + ch] = Number.isFinite(v) ? Math.max(0, Math.min(255, Math.round(v))) : 0;
      }
    }
  }
  return { width: ow, height: oh, channels: c, pixels: Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('base64') };
}

/** The samples whose predicted class changed between the runs, then those every run got wrong. */
export function pickExamples(set: TestSet, runs: RunResult[], count: number): SampleExample[] {
  const out: SampleExample[] = [];
  let changed = 0;
  let wrong = 0;
  for (let i = 0; i < count && (changed < MAX_CHANGED || wrong < MAX_WRONG); i++) {
    const label = set.labels[i]!;
    const preds = runs.map((r) => r.metrics.predictions[i]!);
    const differ = preds.some((p) => p !== preds[0]);
    const why = differ ? (changed < MAX_CHANGED ? 'changed' : null) : preds[0] !== label && wrong < MAX_WRONG ? 'wrong' : null;
    if (!why) continue;
    if (why === 'changed') changed++;
    else wrong++;
    out.push({ index: i, label, predicted: Object.fromEntries(runs.map((r, j) => [r.label, preds[j]!])), why, image: sampleImage(set.sample(i)) });
  }
  return out;
}
