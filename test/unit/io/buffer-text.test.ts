// latin1Text and utf8Text (main/io/buffer-text.ts) read what Buffer#toString reads for the same
// encoding and range: ASCII, bytes ≥ 0x80, UTF-8 of 2–4 bytes, invalid and cut-short sequences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { asciiText, latin1Text, utf8Text } from '../../../main/io/buffer-text.ts';

test('latin1Text and utf8Text equal toString over every range of mixed bytes', () => {
  const samples = [
    Buffer.from('model.layers.0.mlp.experts.17.w1.weight', 'utf8'),
    Buffer.from('größe/データ/😀 end', 'utf8'),
    Buffer.from([0x61, 0xff, 0xc3, 0x28, 0xe2, 0x82, 0xf0, 0x9f, 0x98, 0x80, 0x80, 0x00, 0x7f]),
    randomBytes(64),
  ];
  for (const b of samples) {
    for (let start = 0; start <= b.length; start++) {
      for (let end = start; end <= b.length; end++) {
        assert.equal(latin1Text(b, start, end), b.toString('latin1', start, end), `latin1 ${start}..${end} of ${b.toString('hex')}`);
        assert.equal(utf8Text(b, start, end), b.toString('utf8', start, end), `utf8 ${start}..${end} of ${b.toString('hex')}`);
      }
    }
  }
});

test('a Buffer over part of a larger ArrayBuffer is read from its own offset', () => {
  const whole = Buffer.from('xxxxhello worldyyyy');
  const view = Buffer.from(whole.buffer, whole.byteOffset + 4, 11);
  assert.equal(latin1Text(view, 0, 5), 'hello');
  assert.equal(utf8Text(view, 6, 11), 'world');
});

test('asciiText is latin1Text of a range of bytes below 0x80, and null for a range with any byte above', () => {
  const b = Buffer.from([0x61, 0x62, 0x00, 0x7f, 0x80, 0x63, 0xff, 0x64]);
  for (let start = 0; start <= b.length; start++) {
    for (let end = start; end <= b.length; end++) {
      const ascii = b.subarray(start, end).every((x) => x < 0x80);
      assert.equal(asciiText(b, start, end), ascii ? b.toString('latin1', start, end) : null, `${start}..${end}`);
    }
  }
});
