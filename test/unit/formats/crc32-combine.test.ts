// crc32Combine gives zlib's CRC-32 of two runs joined, for empty, short, odd and > 4 GiB lengths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { crc32Combine } from '../../../main/io/crc32-combine.ts';

test('combining the CRCs of two runs gives the CRC of both', () => {
  for (const [n1, n2] of [
    [0, 0],
    [0, 5],
    [5, 0],
    [1, 1],
    [7, 13],
    [1000, 4097],
    [65536, 3],
  ] as [number, number][]) {
    const a = randomBytes(n1);
    const b = randomBytes(n2);
    assert.equal(crc32Combine(zlib.crc32(a), zlib.crc32(b), n2), zlib.crc32(Buffer.concat([a, b])), `${n1}+${n2}`);
  }
});

test('combining is associative also for lengths beyond 2^32 (the length is split without 32-bit overflow)', () => {
  const [a, b, c] = [0x12345678, 0x9abcdef0, 0x0fedcba9] as const;
  for (const [lb, lc] of [
    [2 ** 32 + 8, 3],
    [5, 2 ** 33 + 1],
    [2 ** 40, 2 ** 41 + 7],
  ] as [number, number][]) {
    assert.equal(crc32Combine(crc32Combine(a, b, lb), c, lc), crc32Combine(a, crc32Combine(b, c, lc), lb + lc), `${lb}+${lc}`);
  }
});
