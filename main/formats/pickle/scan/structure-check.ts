import type { Sym } from './symbols.ts';

/** More DUPs than this in one pickle is amplification: CPython's Pickler never writes DUP. */
const MAX_DUPS = 32;
/** More fetches than this of one memoized list, dict or set is amplification (fickling's memo expansion). */
const MAX_CONTAINER_GETS = 32;

/**
 * Notices a pickle whose structure `pickle.dumps` never writes, the files scanners and loaders
 * read differently (a known scanner-bypass technique):
 * - a frame that splits an opcode, or a FRAME inside another frame (Lib/pickle.py `_Unframer`
 *   raises on both; CPython's C `_pickle.c` `load_frame` only checks the bytes exist and reads on
 *   across the boundary; `_Framer` always ends a frame between opcodes);
 * - a PROTO anywhere but the first byte (`Pickler.dump` writes one PROTO, first);
 * - DUP or memo fetches of one container repeated past a bound (expansion: a small file that
 *   builds a huge or deeply shared structure).
 * Offsets are relative to the pickle's first byte. The first problem found is kept.
 */
export class StructureCheck {
  problem: string | undefined;
  private frameEnd = -1;
  private lastOffset = -1;
  private dups = 0;
  private readonly containerGets = new Map<number, number>();

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

  /** A FRAME opcode at `offset` announcing `length` bytes after its 9-byte header. */
  frame(offset: number, length: number): void {
    this.frameEnd = offset + 9 + length;
  }

  memoGet(key: number, value: Sym): void {
    if (value.t !== 'list' && value.t !== 'dict' && value.t !== 'set') return;
    const n = (this.containerGets.get(key) ?? 0) + 1;
    this.containerGets.set(key, n);
    if (n === MAX_CONTAINER_GETS + 1) this.flag(`memo entry ${key}, a container, is fetched more than ${MAX_CONTAINER_GETS} times (expansion)`);
  }
}
