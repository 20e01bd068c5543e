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
 */
export function memoReads(input: PickleInput): Set<number> | null {
  const reads = new Set<number>();
  const skip = (n: number): boolean => {
    if (n < 0 || input.pos + n > input.end) return false;
    input.pos += n;
    return true;
  };
  try {
    for (;;) {
      if (input.pos >= input.end) return null;
      const op = input.byte();
      switch (op) {
        case 0x2e: // STOP
          return reads;
        case 0x68: // BINGET
          reads.add(input.byte());
          break;
        case 0x6a: // LONG_BINGET
          reads.add(input.uint32());
          break;
        case 0x67: {
          // GET (text): as the unpickler and the scan read its index
          const s = input.line().trim();
          if (!/^[-+]?\d+$/.test(s)) return null;
          const i = Number(s);
          if (!Number.isSafeInteger(i)) return null;
          reads.add(i);
          break;
        }
        // no argument
        case 0x28:
        case 0x30:
        case 0x31:
        case 0x32:
        case 0x4e:
        case 0x88:
        case 0x89:
        case 0x98:
        case 0x29:
        case 0x74:
        case 0x85:
        case 0x86:
        case 0x87:
        case 0x5d:
        case 0x6c:
        case 0x7d:
        case 0x64:
        case 0x8f:
        case 0x90:
        case 0x91:
        case 0x61:
        case 0x65:
        case 0x73:
        case 0x75:
        case 0x94:
        case 0x93:
        case 0x52:
        case 0x81:
        case 0x92:
        case 0x62:
        case 0x51:
        case 0x6f:
          break;
        // fixed-size arguments
        case 0x80:
        case 0x4b:
        case 0x71:
        case 0x82:
          if (!skip(1)) return null;
          break;
        case 0x4d:
        case 0x83:
          if (!skip(2)) return null;
          break;
        case 0x4a:
        case 0x72:
        case 0x84:
          if (!skip(4)) return null;
          break;
        case 0x47:
        case 0x95:
          if (!skip(8)) return null;
          break;
        // length-prefixed arguments
        case 0x8a:
        case 0x8c:
        case 0x55:
        case 0x43:
          if (!skip(input.byte())) return null;
          break;
        case 0x8b:
        case 0x54:
          if (!skip(input.int32())) return null;
          break;
        case 0x58:
        case 0x42:
          if (!skip(input.uint32())) return null;
          break;
        case 0x8d:
        case 0x8e:
        case 0x96:
          if (!skip(input.uint64())) return null;
          break;
        // text lines
        case 0x49:
        case 0x4c:
        case 0x46:
        case 0x56:
        case 0x53:
        case 0x50:
        case 0x70:
          input.line();
          break;
        case 0x63:
        case 0x69:
          input.line();
          input.line();
          break;
        default:
          return null; // NEXT_BUFFER, or no opcode at all: the unpickler says what is wrong
      }
    }
  } catch {
    return null; // cut short: the unpickler reports it where it happens
  }
}
