// The memo keeps only the values a pickle reads back (memoReads): real pickles unpickle to the
// same values (unpickler.test.ts compares every CPython vector), and what is dropped still counts
// for MEMOIZE's numbering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoReads } from '../../../../main/formats/pickle/memo-reads.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../../../main/formats/pickle/unpickler.ts';
import { PyDict, PyList } from '../../../../main/formats/values/python-values.ts';
import { openTorchArchive } from '../../../../main/formats/torch/torch-zip.ts';
import { BufferReader, FileReader } from '../../../../main/io/random-access.ts';
import { fixtureDir } from './helpers.ts';

const input = (bytes: number[]): PickleInput => PickleInput.fromBytes(Uint8Array.from(bytes), 'test.pkl');

test('memoReads: every CPython vector that reads to a value is walked to its STOP', () => {
  let walked = 0;
  for (const f of readdirSync(fixtureDir).filter((x) => x.endsWith('.pkl'))) {
    const expected = JSON.parse(readFileSync(join(fixtureDir, f.replace(/\.pkl$/, '.expected.json')), 'utf8')) as { error?: unknown };
    if (expected.error) continue;
    const reads = memoReads(PickleInput.fromBytes(readFileSync(join(fixtureDir, f)), f));
    assert.ok(reads, `${f}: the pass reaches STOP`);
    walked++;
  }
  assert.ok(walked > 30, `${walked} vectors`);
});

test('memoReads: a torch.save pickle reads back a handful of its memo entries', () => {
  const a = openTorchArchive(new FileReader('test/fixtures/torch/dp_state_dict.pt'));
  try {
    const bytes = a.zip.readEntry(a.zip.get(`${a.prefix}data.pkl`)!);
    const reads = memoReads(PickleInput.fromBytes(bytes, 'data.pkl'))!;
    let puts = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x71 || bytes[i] === 0x72) puts++; // an upper bound on BINPUT/LONG_BINPUT
    assert.ok(reads.size > 0 && reads.size * 2 < puts, `${reads.size} read back of up to ${puts} stored`);
  } finally {
    a.zip.reader.close();
  }
});

test('a value dropped from the memo still numbers MEMOIZE: the next entry keeps its index', () => {
  // PROTO 4, EMPTY_LIST, MEMOIZE (0, never read), POP, EMPTY_DICT, MEMOIZE (1), POP, BINGET 1, STOP
  const bytes = [0x80, 4, 0x5d, 0x94, 0x30, 0x7d, 0x94, 0x30, 0x68, 1, 0x2e];
  assert.deepEqual([...memoReads(input(bytes))!], [1]);
  assert.ok(unpickle(input(bytes)).value instanceof PyDict);
  // the same with index 0 read: the list
  assert.ok(unpickle(input([0x80, 4, 0x5d, 0x94, 0x30, 0x7d, 0x94, 0x30, 0x68, 0, 0x2e])).value instanceof PyList);
});

test('memoReads: a stream it cannot follow keeps every value (null); the unpickler then says what is wrong', () => {
  assert.equal(memoReads(input([0x80, 2, 0x5d, 0x71])), null, 'cut short');
  assert.equal(memoReads(input([0x80, 2, 0xff, 0x2e])), null, 'no such opcode');
  assert.equal(memoReads(input([0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0xff, 0x2e])), null, 'negative LONG4 length');
  assert.deepEqual([...memoReads(input([...Buffer.from('(lp0\ng0\n.')]))!], [0], 'protocol 0 GET text');
});

test('memoReads: a pickle in memory and the same bytes read through a file cursor give the same answer', () => {
  const cases: [string, Uint8Array][] = readdirSync(fixtureDir)
    .filter((x) => x.endsWith('.pkl'))
    .map((f) => [f, readFileSync(join(fixtureDir, f))]);
  const a = openTorchArchive(new FileReader('test/fixtures/torch/dp_state_dict.pt'));
  try {
    cases.push(['dp_state_dict.pt data.pkl', a.zip.readEntry(a.zip.get(`${a.prefix}data.pkl`)!)]);
  } finally {
    a.zip.reader.close();
  }
  // cut short at every byte of a small torch pickle, and odd streams
  const small = cases[cases.length - 1]![1].subarray(0, 400);
  for (let n = 0; n < small.length; n++) cases.push([`torch pickle cut at ${n}`, small.subarray(0, n)]);
  cases.push(['long text line', Uint8Array.from([...Buffer.from('(lp0\ng'), ...Buffer.alloc(3 << 19, 0x31), 0x0a, 0x2e])]);
  cases.push(['BINUNICODE8 of an impossible length', Uint8Array.from([0x80, 4, 0x8d, 0, 0, 0, 0, 0, 0, 0x40, 0, 0x2e])]);
  for (const [name, bytes] of cases) {
    const inMemory = memoReads(PickleInput.fromBytes(bytes, name));
    const throughCursor = memoReads(new PickleInput(new BufferReader(Buffer.from(bytes), name)));
    assert.deepEqual(inMemory && [...inMemory], throughCursor && [...throughCursor], name);
  }
  assert.ok(cases.length > 400);
});
