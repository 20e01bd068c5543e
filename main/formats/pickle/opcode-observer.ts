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
  /**
   * A str → tensor item that the unpickler read in one step (`PickleHooks.items`) instead of
   * feeding its opcodes: the observer applies what they would have left behind and returns true,
   * or returns false and changes nothing where it cannot be sure (then the opcodes are fed).
   */
  skipTensorItem?(item: TensorItem): boolean;
}

/** What a memo PUT inside a `TensorItem` stores. */
export const ItemPut = {
  Key: 0,
  /** the `'storage'` string of the persistent id */
  StorageTag: 1,
  StorageKey: 2,
  Location: 3,
  /** the `OrderedDict()` of backward hooks */
  Hooks: 4,
  Tensor: 5,
  /** a tuple: the persistent id, a size, a stride, the rebuild's arguments */
  Tuple: 6,
} as const;
export type ItemPut = (typeof ItemPut)[keyof typeof ItemPut];

/**
 * One item of a dict as torch.save writes it (torch/_tensor.py `_reduce_ex_internal`, torch/serialization.py
 * `_save.persistent_id`), read by `formats/torch/fast-items.ts`: a key string (`key`, PUT), then either
 * a BINGET of a tensor read before (`valueGet`) or
 * `_rebuild_tensor_v2(('storage', cls, key, location, numel), offset, size, stride, requires_grad, OrderedDict())`
 * with the rebuild function, the `'storage'` string when not written inline, and `OrderedDict` read from the memo.
 */
export interface TensorItem {
  /** file offset of the item's last opcode */
  last: number;
  /** the opcodes the item holds, each once: `ops[0 .. opCount)` */
  ops: number[];
  opCount: number;
  key: string;
  /** memo index of a tensor read before, or -1 for a `_rebuild_tensor_v2` call */
  valueGet: number;
  rebuildGet: number;
  hooksGet: number;
  /** memo index the `'storage'` string is read from, or -1 when it is written inline */
  storageTagGet: number;
  /** the storage key and location when written inline (empty when read from the memo) */
  storageKey: string;
  location: string;
  /** file offsets of the REDUCEs that call `OrderedDict` and `_rebuild_tensor_v2` */
  hooksAt: number;
  rebuildAt: number;
  /** the memo indices the item PUTs, in order, and what each stores: `puts[i]` stores `putWhat[i]`, for i < `putCount` */
  puts: number[];
  putWhat: ItemPut[];
  putCount: number;
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
