import { CRC32_POLY as POLY } from './crc32.ts';

/**
 * CRC-32 (zlib's polynomial, reflected) of two byte runs joined, from the CRC of each and the
 * second's length, as zlib's `crc32_combine` computes it: multiply the first CRC by x^(8·len2)
 * modulo the polynomial, then add the second. Lets a tensor assembled from slices be checked
 * against its slices' CRCs without reading the written tensor again.
 */

/** a(x)·b(x) mod p(x), both reflected. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) mod p(x) for k = 0..31. */
const X2N: number[] = [];
{
  let p = 0x40000000; // x^1
  for (let k = 0; k < 32; k++) {
    X2N.push(p);
    p = multModP(p, p);
  }
}

/** x^(n·2^k) mod p(x); n may exceed 2^32. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  return (multModP(x2nModP(len2, 3), crc1 >>> 0) ^ (crc2 >>> 0)) >>> 0;
}
