// crc32 (main/io/crc32.ts) is zlib's CRC-32 exactly: every length up to 300 bytes and some large
// ones, unaligned views, Uint8Arrays that are not Buffers, and continuation from any value. On the
// platforms @node-rs/crc32 ships a binding for, the fast native one is the one in use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { crc32, crc32Implementation } from '../../../main/io/crc32.ts';

test('the native CRC-32 is in use where @node-rs/crc32 ships a binding (linux, macOS, windows on x64 and arm64)', () => {
  const shipped = ['linux', 'darwin', 'win32'].includes(process.platform) && ['x64', 'arm64'].includes(process.arch);
  if (!shipped) console.log(`# no @node-rs/crc32 binding for ${process.platform}-${process.arch}: zlib's CRC-32 is used`);
  assert.equal(crc32Implementation(), shipped ? 'native' : 'zlib');
});

test('crc32 equals zlib.crc32 for every length 0..300, at every alignment, and for large runs', () => {
  const bytes = randomBytes(3 << 20);
  for (let n = 0; n <= 300; n++) {
    const at = n % 16;
    const view = bytes.subarray(at, at + n);
    assert.equal(crc32(view), zlib.crc32(view), `${n} bytes at ${at}`);
  }
  for (const [at, n] of [
    [0, 1 << 20],
    [3, (1 << 20) + 5],
    [1, (3 << 20) - 1],
  ] as [number, number][]) {
    assert.equal(crc32(bytes.subarray(at, at + n)), zlib.crc32(bytes.subarray(at, at + n)), `${n} bytes at ${at}`);
  }
});

test('crc32 continues from any value, including ones with the top bit set, as zlib does', () => {
  const bytes = randomBytes(10_000);
  for (const value of [0, 1, 0x7fffffff, 0x80000000, 0xdeadbeef, 0xffffffff]) {
    assert.equal(crc32(bytes, value), zlib.crc32(bytes, value), `from ${value.toString(16)}`);
    assert.equal(crc32(bytes.subarray(0, 0), value), value >>> 0, `empty from ${value.toString(16)}`);
  }
  // short runs (the JavaScript loop) continue from any value too
  for (const value of [1, 0x80000000, 0xdeadbeef, 0xffffffff])
    for (const n of [1, 2, 4, 8, 31, 32, 33])
      assert.equal(crc32(bytes.subarray(0, n), value), zlib.crc32(bytes.subarray(0, n), value), `${n} bytes from ${value.toString(16)}`);
  // a run split anywhere and continued gives the CRC of the whole run
  for (const cut of [0, 1, 17, 4096, 9_999, 10_000])
    assert.equal(crc32(bytes.subarray(cut), crc32(bytes.subarray(0, cut))), zlib.crc32(bytes), `cut at ${cut}`);
});

test('crc32 takes a plain Uint8Array view of a larger buffer, not only a Buffer', () => {
  const backing = new ArrayBuffer(4096);
  const all = new Uint8Array(backing);
  for (let i = 0; i < all.length; i++) all[i] = (i * 131 + 7) & 0xff;
  const view = new Uint8Array(backing, 5, 3000);
  assert.equal(crc32(view), zlib.crc32(Buffer.from(backing, 5, 3000)));
});
