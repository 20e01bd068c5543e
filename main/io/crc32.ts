/**
 * CRC-32 (zlib's: IEEE polynomial, reflected) of `data`, continuing from `value`, the function
 * every checkpoint copy and read-back check uses.
 *
 * Node's `zlib.crc32` is zlib's portable table-driven loop, about 1.5 GB/s on this machine's data
 * in cache. A verified copy CRCs every byte twice (the source as read, the output as read back),
 * so a 2 GiB DeepSpeed consolidation spent 3.1 s of its 5.7 s of CPU there, more than in reading
 * and writing. @node-rs/crc32 (Rust's crc32fast, carry-less multiply on x86-64 and the CRC
 * instructions on ARMv8) computes the same function about 10× faster. It is a prebuilt native
 * binding; where none loads for this platform, or it disagrees with zlib on the check values
 * below, zlib's is used: the result is the same, only slower.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';

export type Crc32 = (data: Uint8Array, value?: number) => number;

const zlibCrc32: Crc32 = (data, value = 0) => zlib.crc32(data, value);

function nativeCrc32(): Crc32 | null {
  let binding: { crc32(input: Uint8Array, initialState?: number): number };
  try {
    binding = createRequire(import.meta.url)('@node-rs/crc32');
  } catch {
    return null;
  }
  const f: Crc32 = (data, value = 0) => binding.crc32(data, value);
  // the CRC-32 check value (of "123456789"), in one call and continued across a split, and a
  // continuation from a value with the top bit set
  const check = Buffer.from('123456789');
  const agrees =
    f(check) === 0xcbf43926 &&
    f(check.subarray(4), f(check.subarray(0, 4))) === 0xcbf43926 &&
    f(check.subarray(3, 7), 0xdeadbeef) === zlib.crc32(check.subarray(3, 7), 0xdeadbeef);
  return agrees ? f : null;
}

const native = nativeCrc32();

/** The CRC-32 of `data` continued from `value` (0 to start), unsigned. */
export const crc32: Crc32 = native ?? zlibCrc32;

/** Which implementation `crc32` is: `native` (@node-rs/crc32) or `zlib` (its fallback). */
export const crc32Implementation: 'native' | 'zlib' = native ? 'native' : 'zlib';
