import type { PickleInput } from './pickle-input.ts';

/**
 * The memo indices a pickle ever reads back (GET, BINGET, LONG_BINGET), found by one pass over
 * its opcodes that builds nothing; null when the pass cannot tell (an unknown opcode, a cut-short
 * or malformed stream: then every value is kept, as before).
 *
 * `torch.save` memoizes every value it writes (pickle.py `Pickler.memoize`: 800,000 PUTs in a
 * 100,000-tensor pickle) but reads back only a handful (the `OrderedDict` and `_rebuild_tensor_v2`
 * globals, the `'storage'` and device strings). A memo that keeps only these lets every other
 * value die young instead of living until STOP: the unpickler's and the security scan's memos held
 * 135 MB of such values for 100,000 tensors. The indices put but never read are still counted
 * (MEMOIZE numbers entries by the memo's size).
 *
 * A pickle in memory (a zip record) is walked over its bytes directly, one table look-up per
 * opcode; one read from a file goes through the input's cursor. Both follow `ARGUMENT`.
 */
export function memoReads(input: PickleInput): Set<number> | null {
  const bytes = input.inMemory;
  return bytes ? readsInBytes(bytes, input.pos, input.end) : readsThroughInput(input);
}

// What follows each opcode (CPython Lib/pickletools.py), in two tables. `FIXED_ARGUMENT[op]`: the
// size of a fixed-size argument (0: none), -1 for the rest, whose kind is `ARGUMENT[op]`.
const STOP = 1;
const LENGTH_U8 = 2; // a 1-byte length, then that many bytes
const LENGTH_I32 = 3; // a signed 4-byte length (negative: malformed)
const LENGTH_U32 = 4;
const LENGTH_U64 = 5;
const LINE = 6; // a text line
const TWO_LINES = 7;
const BINGET = 8;
const LONG_BINGET = 9;
const GET = 10; // text
const FIXED_ARGUMENT = new Int8Array(256).fill(-1);
const FIXED_OPS: [number, number[]][] = [
  [
    0,
    [
      0x28, 0x30, 0x31, 0x32, 0x4e, 0x88, 0x89, 0x98, 0x29, 0x74, 0x85, 0x86, 0x87, 0x5d, 0x6c, 0x7d, 0x64, 0x8f, 0x90, 0x91, 0x61, 0x65, 0x73, 0x75, 0x94,
      0x93, 0x52, 0x81, 0x92, 0x62, 0x51, 0x6f,
    ],
  ],
  [1, [0x80, 0x4b, 0x71, 0x82]],
  [2, [0x4d, 0x83]],
  [4, [0x4a, 0x72, 0x84]],
  [8, [0x47, 0x95]],
];
for (const [size, ops] of FIXED_OPS) for (const op of ops) FIXED_ARGUMENT[op] = size;
/** `ARGUMENT[op]`: the kind of the other opcodes' arguments; 0 for a byte that is no opcode (or NEXT_BUFFER, which checkpoints never hold) */
const ARGUMENT = new Uint8Array(256);
const KINDS: [number, number[]][] = [
  [STOP, [0x2e]],
  [LENGTH_U8, [0x8a, 0x8c, 0x55, 0x43]],
  [LENGTH_I32, [0x8b, 0x54]],
  [LENGTH_U32, [0x58, 0x42]],
  [LENGTH_U64, [0x8d, 0x8e, 0x96]],
  [LINE, [0x49, 0x4c, 0x46, 0x56, 0x53, 0x50, 0x70]],
  [TWO_LINES, [0x63, 0x69]],
  [BINGET, [0x68]],
  [LONG_BINGET, [0x6a]],
  [GET, [0x67]],
];
for (const [kind, ops] of KINDS) for (const op of ops) ARGUMENT[op] = kind;

/** A GET's index as the unpickler and the scan read it, or null. */
function getIndex(line: string): number | null {
  const s = line.trim();
  if (!/^[-+]?\d+$/.test(s)) return null;
  const i = Number(s);
  return Number.isSafeInteger(i) ? i : null;
}

/** The longest text line `PickleInput.line` reads (without its newline). */
const MAX_LINE = (1 << 20) + 1;

function readsInBytes(b: Uint8Array, start: number, end: number): Set<number> | null {
  const reads = new Set<number>();
  // BINGET's one-byte indices marked here, put in the Set at STOP: a 100,000-tensor pickle has
  // 400,000 BINGETs of a handful of indices, each a Set.add of a value already there
  const byteReads = new Uint8Array(256);
  const u32 = (at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  /** the end of the line at `at` (its newline), or -1 */
  const lineEnd = (at: number): number => {
    const nl = b.indexOf(0x0a, at);
    return nl < 0 || nl >= end || nl - at > MAX_LINE ? -1 : nl;
  };
  let p = start;
  while (p < end) {
    const op = b[p++]!;
    const fixed = FIXED_ARGUMENT[op]!;
    if (fixed >= 0) {
      if (p + fixed > end) return null;
      p += fixed;
      continue;
    }
    const kind = ARGUMENT[op]!;
    let n: number;
    switch (kind) {
      case STOP:
        for (let i = 0; i < 256; i++) if (byteReads[i] === 1) reads.add(i);
        return reads;
      case BINGET:
        if (p >= end) return null;
        byteReads[b[p]!] = 1;
        n = 1;
        break;
      case LONG_BINGET:
        if (p + 4 > end) return null;
        reads.add(u32(p));
        n = 4;
        break;
      case LENGTH_U8:
        if (p >= end) return null;
        n = b[p++]!;
        break;
      case LENGTH_I32:
      case LENGTH_U32:
        if (p + 4 > end) return null;
        n = kind === LENGTH_I32 ? u32(p) | 0 : u32(p);
        p += 4;
        break;
      case LENGTH_U64: {
        if (p + 8 > end) return null;
        const hi = u32(p + 4);
        if (hi >= 2 ** 21) return null; // PickleInput.uint64 refuses it
        n = hi * 2 ** 32 + u32(p);
        p += 8;
        break;
      }
      case LINE:
      case TWO_LINES:
      case GET: {
        let nl = lineEnd(p);
        if (nl < 0) return null;
        if (kind === GET) {
          const i = getIndex(Buffer.from(b.buffer, b.byteOffset + p, nl - p).toString('latin1'));
          if (i === null) return null;
          reads.add(i);
        }
        if (kind === TWO_LINES && (nl = lineEnd(nl + 1)) < 0) return null;
        p = nl + 1;
        continue;
      }
      default:
        return null; // NEXT_BUFFER, or no opcode at all: the unpickler says what is wrong
    }
    if (n < 0 || p + n > end) return null;
    p += n;
  }
  return null;
}

function readsThroughInput(input: PickleInput): Set<number> | null {
  const reads = new Set<number>();
  const byteReads = new Uint8Array(256); // as in readsInBytes: the same Set, in the same order
  try {
    while (input.pos < input.end) {
      const op = input.byte();
      const skip = FIXED_ARGUMENT[op]!;
      if (skip >= 0) {
        if (input.pos + skip > input.end) return null;
        input.pos += skip;
        continue;
      }
      let n: number;
      switch (ARGUMENT[op]) {
        case STOP:
          for (let i = 0; i < 256; i++) if (byteReads[i] === 1) reads.add(i);
          return reads;
        case BINGET:
          byteReads[input.byte()] = 1;
          continue;
        case LONG_BINGET:
          reads.add(input.uint32());
          continue;
        case LENGTH_U8:
          n = input.byte();
          break;
        case LENGTH_I32:
          n = input.int32();
          break;
        case LENGTH_U32:
          n = input.uint32();
          break;
        case LENGTH_U64:
          n = input.uint64();
          break;
        case LINE:
        case TWO_LINES:
        case GET: {
          const kind = ARGUMENT[op];
          const line = input.line();
          if (kind === TWO_LINES) input.line();
          if (kind === GET) {
            const i = getIndex(line);
            if (i === null) return null;
            reads.add(i);
          }
          continue;
        }
        default:
          return null;
      }
      if (n < 0 || input.pos + n > input.end) return null;
      input.pos += n;
    }
    return null;
  } catch {
    return null; // cut short: the unpickler reports it where it happens
  }
}
