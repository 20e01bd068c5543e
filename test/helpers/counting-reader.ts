import type { RandomAccessReader } from '../../main/io/random-access.ts';

/** A reader that records every read it is asked for, to check that opening a file stays lazy. */
export class CountingReader implements RandomAccessReader {
  readonly reads: [number, number][] = [];
  constructor(private readonly inner: RandomAccessReader) {}
  get name(): string {
    return this.inner.name;
  }
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, length: number): Uint8Array {
    this.reads.push([offset, length]);
    return this.inner.read(offset, length);
  }
  close(): void {
    this.inner.close();
  }
}
