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

/**
 * The CRC for more than `SMALL` bytes, chosen on first use: loading the native binding took
 * ~8 ms of every `ckpt` start (inspect, scan, help) that never computes a CRC.
 */
let large: Crc32 | null = null;
function largeCrc32(): Crc32 {
  return (large ??= nativeCrc32() ?? zlibCrc32);
}

/** zlib's polynomial, reflected (also crc32-combine.ts's). */
export const CRC32_POLY = 0xedb88320;

/** zlib's table for the reflected polynomial, for the byte-at-a-time loop of `smallCrc32`. */
const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? CRC32_POLY ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

/** Up to this many bytes a JavaScript loop is faster than a call into either library (a one-element tensor is 2 to 8 bytes). */
const SMALL = 32;

/** The same CRC, one byte at a time (zlib's `crc32_z` without its word-at-a-time part). */
function smallCrc32(data: Uint8Array, value = 0): number {
  let c = ~value;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * The CRC-32 of `data` continued from `value` (0 to start), unsigned. The 500,000 storages of a
 * checkpoint of one-element tensors are CRC'd twice each (as copied, as read back): by the
 * JavaScript loop, 2.5× faster than 1,000,000 calls into the native binding.
 */
export const crc32: Crc32 = (data, value = 0) => (data.length <= SMALL ? smallCrc32(data, value) : (large ?? largeCrc32())(data, value));

/** Which implementation `crc32` is: `native` (@node-rs/crc32) or `zlib` (its fallback). */
export function crc32Implementation(): 'native' | 'zlib' {
  return largeCrc32() === zlibCrc32 ? 'zlib' : 'native';
}
