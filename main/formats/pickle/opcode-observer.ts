/**
 * Something that follows a pickle opcode by opcode while the unpickler reads it: the security
 * scan (`PickleScanner`), so that a file's value and its verdict come from one walk of its bytes.
 */
export interface OpcodeObserver {
  /** false once it has seen STOP or given up on malformed input: it takes no more opcodes */
  readonly running: boolean;
  /** opcode `op`, which starts at file offset `at`, with its argument (see `OpcodeArg`) */
  feed(op: number, at: number, arg: OpcodeArg): void;
  /** before the first opcode: the only memo indices the pickle reads back (`memoReads`), when known */
  memoReadsAre?(indices: ReadonlySet<number>): void;
}

/**
 * An opcode's argument as the scan keeps it: a number for fixed-width ints, lengths, memo indices
 * and extension codes (LONG4 longer than 64 bytes as 0); the text of strings (empty when longer
 * than `MAX_KEPT_STRING` bytes); the raw line of the protocol-0 text opcodes; `[module, name]`
 * for GLOBAL and INST; nothing for the rest.
 */
export type OpcodeArg = number | bigint | string | readonly [string, string] | undefined;

/** Strings longer than this are skipped, not kept: no global name or literal worth showing is this long. */
export const MAX_KEPT_STRING = 1 << 16;

/** A string argument's text as the scan keeps it (lossy utf-8, as `Buffer#toString`). */
export function scanText(b: Uint8Array): string {
  return b.length > MAX_KEPT_STRING ? '' : Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
}
