/**
 * Where each str key of a dict is among its entries: an open-addressing table of entry numbers in
 * typed arrays, where a `Map<string, number>` held ~28 bytes per key plus the tables it outgrew
 * (a 500,000-key state dict: ~28 MB made while reading, against ~6 MB here).
 */
export class StringIndex {
  /** entry number + 1 per slot, 0 for an empty slot; the length is a power of two, at most half full */
  private slots = new Int32Array(16);
  /** each indexed entry's hash, by the order keys were added */
  private hashes = new Int32Array(8);
  private count = 0;
  /** the key of each added entry, in the order added (the dict's own entry list) */
  constructor(private readonly keyAt: (entry: number) => unknown) {}

  /** FNV-1a over UTF-16 code units */
  private static hash(s: string): number {
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    return h;
  }

  /** The entry number of `key`, or undefined. */
  get(key: string): number | undefined {
    const at = this.probe(key, StringIndex.hash(key));
    return at >= 0 ? at : undefined;
  }

  /** Records that entry `entry` (the next one: entries are added in order) has `key`; the key must be new. */
  add(key: string, entry: number): void {
    if (this.addUnlessPresent(key, entry) !== undefined) throw new Error(`StringIndex: ${JSON.stringify(key)} is indexed already`);
  }

  /**
   * The entry number of `key` when it is indexed; otherwise records that entry `entry` (the next
   * one) has it and returns undefined. One hash of the key for both (a dict's SETITEMS of 100,000 keys).
   */
  addUnlessPresent(key: string, entry: number): number | undefined {
    const h = StringIndex.hash(key);
    let free = this.probe(key, h);
    if (free >= 0) return free;
    if ((this.count + 1) * 2 > this.slots.length) {
      this.grow();
      free = this.probe(key, h);
    }
    this.slots[~free] = entry + 1;
    if (entry >= this.hashes.length) {
      const more = new Int32Array(Math.max(this.hashes.length * 2, entry + 1));
      more.set(this.hashes);
      this.hashes = more;
    }
    this.hashes[entry] = h;
    this.count++;
    return undefined;
  }

  /** The entry with `key`, or the complement of the free slot where it would go. */
  private probe(key: string, h: number): number {
    const mask = this.slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = this.slots[i]!;
      if (e === 0) return ~i;
      if (this.hashes[e - 1] === h && this.keyAt(e - 1) === key) return e - 1;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    const mask = this.slots.length - 1;
    for (let j = 0; j < old.length; j++) {
      const e = old[j]!; // indexed, not `for…of`: run a few times per dict, mostly unoptimized
      if (e === 0) continue;
      let i = this.hashes[e - 1]! & mask;
      while (this.slots[i] !== 0) i = (i + 1) & mask;
      this.slots[i] = e;
    }
  }
}
