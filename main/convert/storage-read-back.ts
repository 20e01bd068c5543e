import { readBackCrcNow } from '../io/byte-verifier.ts';
import type { WrittenStorage } from './write-checkpoint.ts';

/**
 * The CRC-32 of each storage of a written file as read back from the disk, asked for as each
 * record is complete (`onStorageWritten`): small ones at once, large ones in the helper thread
 * while the next record is copied. Kept by storage index (the writer's keys are `0`, `1`, …): a
 * 500,000-storage file has no map of 500,000 keys and promises.
 */
export class StorageReadBack {
  private readonly crcs: number[] = [];
  private readonly pending: Promise<void>[] = [];
  private failed: unknown = null;

  /** Reads back `w` from `file`. */
  add(file: string, w: WrittenStorage): void {
    const i = storageIndex(w.key);
    if (i === null) throw new Error(`storage key ${w.key} is not an index`);
    const crc = readBackCrcNow(file, w.dataOffset, w.nbytes);
    if (typeof crc === 'number') this.crcs[i] = crc;
    else
      this.pending.push(
        crc.then(
          (c) => void (this.crcs[i] = c),
          (e: unknown) => void (this.failed ??= e),
        ),
      );
  }

  /** Every CRC asked for, once the helper thread has answered: by storage index, undefined where none was read. */
  async settledByIndex(): Promise<(i: number) => number | undefined> {
    await Promise.all(this.pending);
    if (this.failed !== null) throw this.failed;
    return (i) => this.crcs[i];
  }
}

/** The index a storage key names (`'12'` → 12), or null for any other text (`'012'`, `'x'`). */
export function storageIndex(key: string): number | null {
  const n = Number(key);
  return Number.isSafeInteger(n) && n >= 0 && String(n) === key ? n : null;
}
