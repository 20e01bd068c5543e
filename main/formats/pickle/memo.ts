/** Indices below this live in an array: pickles number their memo densely from 0. */
const DENSE_LIMIT = 1 << 26;

/**
 * A pickle's memo (index → value). Pickles number memo entries densely from 0 (pickle.py
 * `memoize`: `len(self.memo)`), so an array holds them; a Map held 800,000 entries of a
 * 100,000-tensor checkpoint at several times the cost. Odd indices (PUT takes any integer
 * text) go to a Map, so any index still works.
 */
export class PickleMemo<T> {
  private readonly dense: (T | undefined)[] = [];
  private sparse: Map<number, T> | null = null;
  /** the number of distinct indices stored (MEMOIZE's next index) */
  size = 0;
  /** indices stored without their value (never read back), so that `size` counts them once */
  private readonly dropped = new IndexSet();

  /** `kept` as a bitmap when its indices are small (they are: a pickle reads back a handful of early entries) */
  private readonly keptBits: Uint8Array | null;

  /** `kept`: the only indices ever read back (`memoReads`); the values of the others are not held. null keeps all. */
  constructor(private readonly kept: ReadonlySet<number> | null = null) {
    // 800,000 PUTs of a 100,000-tensor pickle each ask whether their index is kept: a bit test, not a Set lookup
    let max = -1;
    if (kept) for (const i of kept) max = Number.isInteger(i) && i >= 0 && i < DENSE_LIMIT ? Math.max(max, i) : DENSE_LIMIT;
    this.keptBits = kept && max < DENSE_LIMIT ? new Uint8Array(max < 0 ? 0 : (max >>> 3) + 1) : null;
    if (this.keptBits) for (const i of kept!) this.keptBits[i >>> 3]! |= 1 << (i & 7);
  }

  /** Whether a value stored at index `i` is held (read back later), not only counted. */
  keeps(i: number): boolean {
    const bits = this.keptBits;
    if (bits === null) return this.kept === null || this.kept.has(i);
    return i >= 0 && i < bits.length * 8 && i === Math.floor(i) && (bits[i >>> 3]! & (1 << (i & 7))) !== 0;
  }

  get(i: number): T | undefined {
    if (i >= 0 && i < DENSE_LIMIT && Number.isInteger(i)) {
      const v = this.dense[i];
      if (v !== undefined) return v;
    }
    return this.sparse?.get(i);
  }

  /** Whether index `i` was stored (its value kept or not). */
  has(i: number): boolean {
    return this.get(i) !== undefined || this.dropped.has(i);
  }

  set(i: number, v: T): void {
    if (!this.keeps(i)) {
      if (this.dropped.add(i)) this.size++;
      return;
    }
    if (this.get(i) === undefined) this.size++;
    if (i >= 0 && i < DENSE_LIMIT && Number.isInteger(i)) {
      // a write far past the end would make the array sparse (slow): such indices go to the Map
      if (i <= this.dense.length + 1024) {
        this.dense[i] = v;
        return;
      }
      if (this.dense[i] !== undefined) {
        this.dense[i] = v;
        return;
      }
    }
    (this.sparse ??= new Map()).set(i, v);
  }

  /** Replaces every stored `from` with `to` (BUILD that returns a new object). */
  replace(from: T, to: T): void {
    const { dense } = this;
    for (let i = 0; i < dense.length; i++) if (dense[i] === from) dense[i] = to;
    if (this.sparse) for (const [k, v] of this.sparse) if (v === from) this.sparse.set(k, to);
  }
}

/** A set of memo indices: a bitmap for the dense run from 0 that pickles use, a Set for the rest. */
class IndexSet {
  // small at first: it grows while a pickle's first items are read, so the growing code has run
  // (and left V8 its type feedback) before the per-item reader that calls it is optimized; a first
  // growth after that (at index 8,192 from 1,024 bytes) deoptimized `skipTensorItem`, which inlines it
  private bits = new Uint8Array(16);
  private others: Set<number> | null = null;

  has(i: number): boolean {
    if (i >= 0 && Number.isInteger(i) && i < this.bits.length * 8 && (this.bits[i >>> 3]! & (1 << (i & 7))) !== 0) return true;
    return this.others?.has(i) ?? false;
  }

  /** Adds `i`; true when it was not there. */
  add(i: number): boolean {
    if (this.others?.has(i)) return false; // stored before the bitmap grew to reach it
    if (i >= 0 && Number.isInteger(i) && i < DENSE_LIMIT) {
      // grows to reach any index below 16,384 (what 1,024 bytes reached by one doubling), past that by doubling
      const length = this.bits.length;
      if (i >= length * 8 && i < Math.max(length, 1024) * 16) {
        let grownLength = length * 2;
        while (grownLength * 8 <= i) grownLength *= 2;
        const grown = new Uint8Array(grownLength);
        grown.set(this.bits);
        this.bits = grown;
      }
      if (i < this.bits.length * 8) {
        const mask = 1 << (i & 7);
        const at = i >>> 3;
        if (this.bits[at]! & mask) return false;
        this.bits[at]! |= mask;
        return true;
      }
    }
    const others = (this.others ??= new Set());
    if (others.has(i)) return false;
    others.add(i);
    return true;
  }
}
