import type { Expandable, Sym } from './symbols.ts';

/** More DUPs than this in one pickle is amplification: CPython's Pickler never writes DUP. */
const MAX_DUPS = 32;
/**
 * Expansion: a value whose expanded size (every element counted once per path to it) passes
 * this and is more than EXPANSION_RATIO times the bytes read so far. Without sharing every
 * element costs at least one byte, so only memo references repeated inside one another (a DAG of
 * lists, a list appended to itself: fickling's memo expansion, "billion laughs") get there;
 * `torch.save` of a dict that holds one object 40 times does not.
 */
const MAX_EXPANDED = 1_000_000;
const EXPANSION_RATIO = 16;

/**
 * Notices a pickle whose structure `pickle.dumps` never writes, the files scanners and loaders
 * read differently (a known scanner-bypass technique):
 * - a frame that splits an opcode, or a FRAME inside another frame (Lib/pickle.py `_Unframer`
 *   raises on both; CPython's C `_pickle.c` `load_frame` only checks the bytes exist and reads on
 *   across the boundary; `_Framer` always ends a frame between opcodes);
 * - a PROTO anywhere but the first byte (`Pickler.dump` writes one PROTO, first);
 * - DUPs past a bound, or memo references nested so that the value expands to far more elements
 *   than the file has bytes (a small file that builds a huge, deeply shared structure).
 * Offsets are relative to the pickle's first byte. The first problem found is kept.
 */
export class StructureCheck {
  problem: string | undefined;
  private frameEnd = -1;
  private lastOffset = -1;
  private dups = 0;

  private flag(why: string): void {
    this.problem ??= why;
  }

  /** Called at the start of every opcode, before it is read. */
  opcode(op: number, offset: number): void {
    if (this.frameEnd >= 0 && offset >= this.frameEnd) {
      if (offset > this.frameEnd && this.lastOffset < this.frameEnd)
        this.flag(`the opcode at byte ${this.lastOffset} runs past the end of its frame (byte ${this.frameEnd})`);
      this.frameEnd = -1;
    }
    if (op === 0x95 && this.frameEnd >= 0) this.flag(`a FRAME at byte ${offset} begins inside the frame that ends at byte ${this.frameEnd}`);
    if (op === 0x80 && offset !== 0) this.flag(`a second PROTO at byte ${offset}`);
    if (op === 0x32 && ++this.dups === MAX_DUPS + 1) this.flag(`more than ${MAX_DUPS} DUP opcodes (expansion)`);
    this.lastOffset = offset;
  }

  /**
   * Opcodes up to the one at `lastOffset` went by unchecked (`PickleScanner.skipTensorItem`): allowed
   * outside a frame only, for opcodes that are none of FRAME, PROTO and DUP, where this is all
   * `opcode` would have done.
   */
  skipped(lastOffset: number): boolean {
    if (this.frameEnd >= 0) return false;
    this.lastOffset = lastOffset;
    return true;
  }

  /** A FRAME opcode at `offset` announcing `length` bytes after its 9-byte header. */
  frame(offset: number, length: number): void {
    this.frameEnd = offset + 9 + length;
  }

  /** `value` (a new list, dict, set or tuple, or one that grew) now also holds `items`; `offset` is where. */
  holds(value: Sym, items: readonly Sym[], offset: number): void {
    if (value.t !== 'list' && value.t !== 'dict' && value.t !== 'set' && value.t !== 'tuple' && value.t !== 'obj') return;
    let n = value.expanded ?? 1;
    for (let i = 0; i < items.length; i++) n += (items[i] as Expandable).expanded ?? 1; // indexed: a state dict's SETITEMS hold 1000s
    value.expanded = n;
    if (n > MAX_EXPANDED && n > EXPANSION_RATIO * (offset + 1))
      this.flag(`a value at byte ${offset} expands to more than ${MAX_EXPANDED.toLocaleString('en')} elements through repeated memo references (expansion)`);
  }
}
