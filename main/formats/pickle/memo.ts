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

  get(i: number): T | undefined {
    if (i >= 0 && i < DENSE_LIMIT && Number.isInteger(i)) {
      const v = this.dense[i];
      if (v !== undefined) return v;
    }
    return this.sparse?.get(i);
  }

  set(i: number, v: T): void {
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
