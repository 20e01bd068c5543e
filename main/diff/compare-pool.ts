import type { Worker } from 'node:worker_threads';
import { CheckpointError, fail } from '../errors.ts';
import { ViewSource } from '../formats/values/tensor-source.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import { startWorker } from '../io/start-worker.ts';
import { BLOCK_BYTES, newScratch, sameBytesIn, statsIn, type CompareReply, type FileSide, type Piece, type Side } from './block-compare.ts';
import { mergeStats, emptyStats, NUMERIC, type ValueStats } from './value-stats.ts';

/**
 * What to read of a pair: nothing (`shape`: other shapes; `opaque`: other dtypes that are not
 * numbers), bytes first and figures where they differ (`bytes`: one dtype), or figures only
 * (`stats`: two numeric dtypes).
 */
export type PairPlan = 'shape' | 'opaque' | 'bytes' | 'stats';

export interface Compared {
  plan: PairPlan;
  /** equal bytes (only for `bytes`) */
  same: boolean;
  /** difference figures of numbers that were read (null when none were) */
  stats: ValueStats | null;
}

export function planOf(a: TorchTensor, b: TorchTensor): PairPlan {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return 'shape';
  if (a.dtype.name === b.dtype.name) return 'bytes';
  return NUMERIC.has(a.dtype.name) && NUMERIC.has(b.dtype.name) ? 'stats' : 'opaque';
}

/** A task holds at most this many pieces, and pieces up to about a block's bytes, so small tensors travel to a thread together. */
const TASK_PIECES = 512;

export interface CompareOptions {
  /** compare threads; 0 compares everything on the calling thread */
  threads: number;
  /** threads started earlier (ComparePool), to use instead of starting `threads` */
  pool?: ComparePool | null;
  /** bytes per block (BLOCK_BYTES; tests use small blocks to split small tensors) */
  blockBytes?: number;
  cancelled?: () => boolean;
}
/** Tasks a thread holds at once: it starts the next while the answer to the last one travels. */
const IN_FLIGHT = 2;

interface Pair {
  a: TorchTensor;
  b: TorchTensor;
  plan: PairPlan;
  numeric: boolean;
  per: number;
  blocks: number;
  files: { a: FileSide; b: FileSide } | null;
  eqLeft: number;
  unequal: boolean;
  stats: (ValueStats | undefined)[];
  statsLeft: number;
  result: Compared | null;
}

interface Job {
  pair: number;
  block: number;
  op: 'equal' | 'stats';
}

/**
 * Compares tensor pairs. Pairs whose tensors both lie in one piece of a file are split into
 * blocks that `threads` compare threads share (equal bytes first, then the figures of the
 * pairs whose bytes differ); every other pair (a strided view, a DCP chunk assembly, bytes in
 * memory) is compared on this thread meanwhile.
 */
export async function comparePairs(input: { a: TorchTensor; b: TorchTensor }[], opts: CompareOptions): Promise<Compared[]> {
  const { blockBytes = BLOCK_BYTES, cancelled = () => false } = opts;
  const threads = opts.pool?.size ?? opts.threads;
  const pairs = input.map(({ a, b }) => pairOf(a, b, threads > 0, blockBytes));
  const remote = pairs.filter((p) => p.files && !p.result);
  const pool = opts.pool ?? (remote.length && threads > 0 ? new ComparePool(Math.min(threads, remote.length)) : null);
  const done = remote.length ? pool!.run(pairs, blockBytes, cancelled) : Promise.resolve();
  done.catch(() => {}); // awaited below, after this thread's own pairs
  try {
    const scratch = newScratch();
    for (const p of pairs) if (!p.files && !p.result) p.result = await compareHere(p, scratch, cancelled);
    await done;
  } finally {
    if (pool !== opts.pool) await pool?.end();
  }
  return pairs.map((p) => p.result!);
}

function pairOf(a: TorchTensor, b: TorchTensor, threaded: boolean, blockBytes: number): Pair {
  const plan = planOf(a, b);
  const per = Math.max(1, Math.floor(blockBytes / Math.max(a.dtype.size, b.dtype.size)));
  const blocks = Math.ceil(a.numel / per);
  const fa = threaded && (plan === 'bytes' || plan === 'stats') ? fileSide(a) : null;
  const fb = fa ? fileSide(b) : null;
  const numeric = NUMERIC.has(a.dtype.name) && NUMERIC.has(b.dtype.name);
  const pair: Pair = {
    a,
    b,
    plan,
    numeric,
    per,
    blocks,
    files: fa && fb ? { a: fa, b: fb } : null,
    eqLeft: blocks,
    unequal: false,
    stats: [],
    statsLeft: blocks,
    result: null,
  };
  if (plan === 'shape' || plan === 'opaque') pair.result = { plan, same: false, stats: null };
  else if (blocks === 0) pair.result = { plan, same: plan === 'bytes', stats: plan === 'stats' ? emptyStats() : null };
  return pair;
}

/** Where a tensor's elements lie as one row-major run of a file opened by path, or null. */
function fileSide(t: TorchTensor): FileSide | null {
  const r = new ViewSource(t).fileRange();
  return r && { file: r.file, offset: r.offset, dtype: t.dtype.name, size: t.dtype.size };
}

function localSide(t: TorchTensor): Side {
  const source = new ViewSource(t);
  return { dtype: t.dtype.name, size: t.dtype.size, read: (first, count, out) => source.readElements(first, count, out, 0) };
}

/** A pair compared on this thread, one block at a time, letting the compare threads' answers in between. */
async function compareHere(p: Pair, scratch: ReturnType<typeof newScratch>, cancelled: () => boolean): Promise<Compared> {
  const a = localSide(p.a);
  const b = localSide(p.b);
  const each = async (fn: (first: number, count: number) => boolean): Promise<boolean> => {
    for (let k = 0; k < p.blocks; k++) {
      if (cancelled()) fail('cancelled', 'diff cancelled');
      if (!fn(k * p.per, Math.min(p.per, p.a.numel - k * p.per))) return false;
      await new Promise((r) => setImmediate(r));
    }
    return true;
  };
  if (p.plan === 'bytes' && (await each((first, count) => sameBytesIn(a, b, first, count, scratch)))) return { plan: p.plan, same: true, stats: null };
  if (!p.numeric) return { plan: p.plan, same: false, stats: null };
  const stats = emptyStats();
  await each((first, count) => {
    mergeStats(stats, statsIn(a, b, first, count, scratch));
    return true;
  });
  return { plan: p.plan, same: false, stats };
}

/**
 * The compare threads, started before they are needed (a diff starts them before it opens the
 * two checkpoints, so their start-up overlaps the reading of the containers), used for one run.
 */
export class ComparePool {
  private readonly workers: Worker[] = [];
  private pairs: Pair[] = [];
  private taskBytes = BLOCK_BYTES;
  private cancelled: () => boolean = () => false;
  /** figures to compute, before any more equality checks: the pairs found unequal finish first */
  private readonly statsQueue: Job[] = [];
  private readonly equalQueue: Job[] = [];
  private left = 0;
  private nextId = 0;
  private readonly tasks = new Map<number, Job[]>();
  private readonly inFlight = new Map<Worker, number>();
  private readonly exited = new Set<Worker>();
  private settle: { resolve(): void; reject(e: Error): void } | null = null;
  private failed: Error | null = null;
  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const w = startWorker('diff-worker', new URL('./compare-worker.ts', import.meta.url), import.meta.url);
      w.on('message', (m: CompareReply) => this.answer(w, m));
      w.on('error', (e) => this.fail(new CheckpointError('io', `a compare thread stopped: ${e.message}`)));
      w.on('exit', () => this.exited.add(w));
      this.workers.push(w);
      this.inFlight.set(w, 0);
    }
  }

  /** Compares the pairs that have file sides and no result yet; once per pool. */
  run(pairs: Pair[], taskBytes: number, cancelled: () => boolean): Promise<void> {
    this.pairs = pairs;
    this.taskBytes = taskBytes;
    this.cancelled = cancelled;
    pairs.forEach((p, i) => {
      if (!p.files || p.result) return;
      this.left++;
      for (let k = 0; k < p.blocks; k++)
        (p.plan === 'bytes' ? this.equalQueue : this.statsQueue).push({ pair: i, block: k, op: p.plan === 'bytes' ? 'equal' : 'stats' });
    });
    this.equalQueue.reverse(); // taken from the end
    this.statsQueue.reverse();
    return new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
      if (this.failed) return reject(this.failed);
      if (this.left === 0) return resolve();
      for (const w of this.workers) this.fill(w);
    });
  }

  /** Lets every thread close its files and stop (each finishes its task at hand first). */
  async end(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (this.exited.has(w)) return resolve();
            w.once('exit', () => resolve());
            w.postMessage({ op: 'end' });
          }),
      ),
    );
  }

  private fail(e: Error): void {
    this.failed ??= e;
    this.settle?.reject(e);
  }

  private next(): Job[] {
    const out: Job[] = [];
    let bytes = 0;
    const take = (q: Job[]): void => {
      while (q.length && bytes < this.taskBytes && out.length < TASK_PIECES) {
        const j = q.at(-1)!;
        if (out.length && j.op !== out[0]!.op) return;
        q.pop();
        const p = this.pairs[j.pair]!;
        if (j.op === 'equal' && p.unequal) continue; // already known to differ
        out.push(j);
        bytes += Math.min(p.per, p.a.numel - j.block * p.per) * Math.max(p.a.dtype.size, p.b.dtype.size);
      }
    };
    take(this.statsQueue);
    if (!out.length) take(this.equalQueue);
    return out;
  }

  /** Gives a thread tasks until it holds IN_FLIGHT or none are left. */
  private fill(w: Worker): void {
    while (this.inFlight.get(w)! < IN_FLIGHT && this.send(w));
  }

  private send(w: Worker): boolean {
    if (this.failed) return false;
    if (this.cancelled()) {
      this.fail(new CheckpointError('cancelled', 'diff cancelled'));
      return false;
    }
    const jobs = this.next();
    if (!jobs.length) return false;
    const id = this.nextId++;
    this.tasks.set(id, jobs);
    const pieces: Piece[] = jobs.map((j) => {
      const p = this.pairs[j.pair]!;
      const first = j.block * p.per;
      return { a: p.files!.a, b: p.files!.b, first, count: Math.min(p.per, p.a.numel - first) };
    });
    this.inFlight.set(w, this.inFlight.get(w)! + 1);
    w.postMessage({ id, op: jobs[0]!.op, pieces });
    return true;
  }

  private answer(w: Worker, m: CompareReply): void {
    const jobs = this.tasks.get(m.id)!;
    this.tasks.delete(m.id);
    this.inFlight.set(w, this.inFlight.get(w)! - 1);
    if ('error' in m) return this.fail(new CheckpointError('io', m.error));
    if ('unequal' in m) {
      for (const i of m.unequal) this.foundUnequal(jobs[i]!.pair);
      for (const j of jobs) {
        const p = this.pairs[j.pair]!;
        if (--p.eqLeft === 0 && !p.unequal) this.finish(p, { plan: p.plan, same: true, stats: null });
      }
    } else {
      jobs.forEach((j, i) => {
        const p = this.pairs[j.pair]!;
        p.stats[j.block] = m.stats[i]!;
        if (--p.statsLeft === 0) {
          const total = emptyStats();
          for (const s of p.stats) mergeStats(total, s!); // in block order, whichever thread computed each
          this.finish(p, { plan: p.plan, same: false, stats: total });
        }
      });
    }
    this.fill(w);
  }

  private foundUnequal(i: number): void {
    const p = this.pairs[i]!;
    if (p.unequal) return;
    p.unequal = true;
    if (!p.numeric) return this.finish(p, { plan: p.plan, same: false, stats: null });
    for (let k = p.blocks - 1; k >= 0; k--) this.statsQueue.push({ pair: i, block: k, op: 'stats' });
    for (const w of this.workers) this.fill(w); // threads that found the queues empty get the new work
  }

  private finish(p: Pair, result: Compared): void {
    p.result = result;
    if (--this.left === 0) this.settle?.resolve();
  }
}
