/**
 * Scores one run's logits batch by batch (top-1, top-5, per class, confusion matrix, a hash of
 * every logit) and compares two runs' logits on the same batches.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Comparison, RunMetrics } from '../../shared/verify.ts';

/** Index of the largest logit; NaN counts as largest and the first of equals wins, as torch.argmax does. */
export function argmax(logits: Float32Array, at: number, k: number): number {
  let best = 0;
  let bv = logits[at]!;
  for (let j = 1; j < k; j++) {
    const v = logits[at + j]!;
    if (Number.isNaN(bv)) break;
    if (v > bv || Number.isNaN(v)) {
      best = j;
      bv = v;
    }
  }
  return best;
}

export class RunScore {
  private readonly predictions: Int32Array;
  private readonly confusion: Int32Array;
  private correct = 0;
  private top5 = 0;
  private seen = 0;
  private readonly hash: Hash = createHash('sha256');
  constructor(
    private readonly samples: number,
    private readonly classes: number,
  ) {
    this.predictions = new Int32Array(samples);
    this.confusion = new Int32Array(classes * classes);
  }

  /** `logits` holds `count` rows of `classes` values for samples start.. */
  add(logits: Float32Array, start: number, count: number, labels: Int32Array): void {
    const k = this.classes;
    this.hash.update(new Uint8Array(logits.buffer, logits.byteOffset, count * k * 4));
    for (let s = 0; s < count; s++) {
      const at = s * k;
      const label = labels[start + s]!;
      const pred = argmax(logits, at, k);
      this.predictions[start + s] = pred;
      this.confusion[label * k + pred]!++;
      if (pred === label) this.correct++;
      const target = logits[at + label]!;
      let above = 0;
      for (let j = 0; j < k; j++) if (logits[at + j]! > target || (j < label && logits[at + j] === target)) above++;
      if (above < 5) this.top5++;
    }
    this.seen += count;
  }

  finish(): RunMetrics {
    const k = this.classes;
    const perClass = Array.from({ length: k }, (_, c) => {
      let n = 0;
      for (let p = 0; p < k; p++) n += this.confusion[c * k + p]!;
      const ok = this.confusion[c * k + c]!;
      return { samples: n, correct: ok, accuracy: n ? ok / n : null };
    });
    return {
      samples: this.seen,
      correct: this.correct,
      top1: this.seen ? this.correct / this.seen : 0,
      top5: k >= 5 && this.seen ? this.top5 / this.seen : null,
      perClass,
      confusion: Array.from({ length: k }, (_, c) => Array.from(this.confusion.subarray(c * k, (c + 1) * k))),
      predictions: Array.from(this.predictions.subarray(0, this.seen)),
      logitsSha256: this.hash.digest('hex'),
    };
  }
}

const DECADES = Array.from({ length: 15 }, (_, i) => -12 + i); // 1e-12 .. 1e2

export class LogitComparison {
  private identical = true;
  private maxAbs = 0;
  private maxRel = 0;
  private outside = 0;
  private readonly zero = { n: 0 };
  private readonly decades = new Array<number>(DECADES.length).fill(0);
  constructor(
    private readonly classes: number,
    private readonly atol: number,
    private readonly rtol: number,
  ) {}

  /** `a` is the candidate, `b` the reference; both hold `count` rows. */
  add(a: Float32Array, b: Float32Array, count: number): void {
    const k = this.classes;
    const bytes = count * k * 4;
    if (Buffer.from(a.buffer, a.byteOffset, bytes).equals(Buffer.from(b.buffer, b.byteOffset, bytes))) {
      // every bit the same (a conversion that passes): every sample differs by zero; one memcmp
      // instead of the loop below, which runs cold in a short verification
      this.zero.n += count;
      return;
    }
    const ua = new Uint32Array(a.buffer, a.byteOffset, count * k);
    const ub = new Uint32Array(b.buffer, b.byteOffset, count * k);
    for (let s = 0; s < count; s++) {
      let sampleMax = 0;
      for (let j = s * k; j < (s + 1) * k; j++) {
        if (ua[j] !== ub[j]) this.identical = false;
        const x = a[j]!;
        const y = b[j]!;
        if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
        const d = Math.abs(x - y);
        const dd = Number.isNaN(d) ? Infinity : d;
        if (dd > sampleMax) sampleMax = dd;
        const m = Math.max(Math.abs(x), Math.abs(y));
        const rel = m > 0 ? dd / m : 0;
        if (rel > this.maxRel || Number.isNaN(rel)) this.maxRel = Number.isNaN(rel) ? Infinity : rel;
        if (!(dd <= this.atol + this.rtol * Math.abs(y))) this.outside++;
      }
      if (sampleMax > this.maxAbs) this.maxAbs = sampleMax;
      if (sampleMax === 0) this.zero.n++;
      else {
        const e = Math.floor(Math.log10(sampleMax));
        this.decades[Math.min(DECADES.length - 1, Math.max(0, e - DECADES[0]!))]!++;
      }
    }
  }

  finish(candidate: string, reference: string, a: RunMetrics, b: RunMetrics): Comparison {
    let same = 0;
    const differing: number[] = [];
    a.predictions.forEach((p, i) => {
      if (p === b.predictions[i]) same++;
      else if (differing.length < 100) differing.push(i);
    });
    return {
      candidate,
      reference,
      accuracyDelta: a.top1 - b.top1,
      identicalPredictions: a.predictions.length ? same / a.predictions.length : 1,
      differingSamples: differing,
      bitIdentical: this.identical,
      maxAbsLogitDiff: this.maxAbs,
      maxRelDiff: this.maxRel,
      outsideTolerance: this.outside,
      atol: this.atol,
      rtol: this.rtol,
      diffHistogram: { zero: this.zero.n, decades: DECADES.map((e, i) => ({ from: Number(`1e${e}`), count: this.decades[i]! })) },
    };
  }
}
