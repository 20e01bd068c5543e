// Small files built to cost a reader time or memory out of all proportion to their size (issue 16),
// each run through the real CLI in a child process: it must end within the budget (10 s of CPU
// time, 500 MiB peak RSS; a hang is caught at 30 s wall), with exit 0 or 2, and an error must
// name the file and the real cause.
// Needs `npm run build` (dist/ckpt.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  badUnicodeEscape,
  bigLong4,
  deepDicts,
  deepLists,
  memoDagLists,
  onnxAroundRawData,
  selfAppendedList,
  selfListingIndex,
  tupleDagDictKey,
  zipBomb,
} from '../../fuzz/hostile-inputs.ts';
import { runMeasured, type MeasuredRun } from '../../fuzz/measured-cli.ts';

const BUDGET_MS = 10_000;
const BUDGET_MIB = 500;
const dir = mkdtempSync(join(tmpdir(), 'ckpt-hostile-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function inspect(name: string, bytes: Uint8Array | string, extra: string[] = []): Promise<MeasuredRun & { file: string }> {
  const file = join(dir, name);
  writeFileSync(file, bytes);
  const r = await runMeasured(['inspect', file, ...extra], { timeoutMs: BUDGET_MS * 3 });
  assert.ok(!r.timedOut, `${name}: still running after ${BUDGET_MS * 3} ms`);
  assert.ok(r.cpuMs !== null && r.cpuMs < BUDGET_MS, `${name}: used ${Math.round(r.cpuMs ?? r.ms)} ms of CPU (${Math.round(r.ms)} ms wall)`);
  assert.ok(r.peakMiB !== null && r.peakMiB < BUDGET_MIB, `${name}: peak RSS ${r.peakMiB?.toFixed(0)} MiB`);
  assert.ok(r.code === 0 || r.code === 2, `${name}: exit ${r.code}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return { ...r, file };
}

function oneLineError(r: MeasuredRun & { file: string }, cause: RegExp): void {
  assert.equal(r.code, 2, r.stdout);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.includes(r.file), `names the file: ${lines[0]}`);
  assert.match(lines[0]!, cause);
  assert.doesNotMatch(lines[0]!, /declared size|Maximum call stack|Invalid string length|NaN/);
}

test('memo DAG of nested lists (2^40 paths in 366 bytes) is read: shared lists are walked once', async () => {
  const r = await inspect('memo-lists.pkl', memoDagLists(40));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /pickle/);
});

test('a list appended to itself 40 times (40^8 paths to depth 8, 96 bytes) is inspected at once: each list walked once', async () => {
  const r = await inspect('self-appended.pkl', selfAppendedList(40));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /pickle/);
});

test('a tuple DAG used as a dict key is refused by its key size, not expanded', async () => {
  oneLineError(await inspect('tuple-key.pkl', tupleDagDictKey(60)), /a dict key is a tuple that expands to more than 1048576 characters/);
});

test('a 200 KB LONG4 integer decodes in linear time and prints as its size', async () => {
  const r = await inspect('long4.pkl', bigLong4(200_000));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /int <int of about 1600000 bits>/);
});

test('lists and dicts nested 100,000 deep: refused with a nesting limit, not a stack overflow', async () => {
  oneLineError(await inspect('deep-lists.pkl', deepLists(100_000)), /nested more than 1000 levels deep/);
  oneLineError(await inspect('deep-dicts.pkl', deepDicts(100_000)), /nested more than 1000 levels deep/);
});

test('dicts nested 1,000 deep (what Python can write) are inspected, also as JSON', async () => {
  assert.equal((await inspect('deep-ok.pkl', deepDicts(999))).code, 0);
  const r = await inspect('deep-ok.pkl', deepDicts(999), ['--json']);
  assert.equal(r.code, 0, r.stderr);
  JSON.parse(r.stdout);
});

test('protocol-0 \\Uffffffff escape: a proper message', async () => {
  oneLineError(await inspect('bad-escape.pkl', badUnicodeEscape()), /UNICODE escape \\Uffffffff is past the last code point U\+10FFFF/);
});

test('zip bomb: data.pkl deflated 1029:1 is refused before it is inflated', async () => {
  oneLineError(await inspect('bomb.pt', zipBomb(256 << 20)), /record archive\/data\.pkl would inflate from \d+ to 268435456 bytes \(1029:1\).*zip bomb/);
});

test('a shard index that lists itself is refused (no endless recursion)', async () => {
  oneLineError(await inspect('model.bin.index.json', selfListingIndex('model.bin.index.json')), /names "model\.bin\.index\.json", the index itself/);
});

test('a FIFO is refused at once instead of blocking for ever', { skip: process.platform === 'win32' ? 'no mkfifo on Windows' : false }, async () => {
  const fifo = join(dir, 'f.pt');
  execFileSync('mkfifo', [fifo]);
  const r = await runMeasured(['inspect', fifo], { timeoutMs: BUDGET_MS });
  assert.ok(!r.timedOut, 'inspect of a FIFO blocked');
  oneLineError({ ...r, file: fifo }, /is a FIFO \(named pipe\), not a regular file/);
});

test('a 1.5 GiB ONNX model is inspected within the budget: its weights stay in the file', async () => {
  // the payload is a hole in a sparse file: 1.5 GiB of zeros that take no disk space
  const { before, payloadBytes, after } = onnxAroundRawData(384 << 20);
  const file = join(dir, 'big.onnx');
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, before, 0, before.length, 0);
    ftruncateSync(fd, before.length + payloadBytes);
    writeSync(fd, after, 0, after.length, before.length + payloadBytes);
  } finally {
    closeSync(fd);
  }
  const r = await runMeasured(['inspect', file, '--json', '--no-devices'], { timeoutMs: BUDGET_MS * 3 });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.cpuMs !== null && r.cpuMs < BUDGET_MS, `used ${Math.round(r.cpuMs ?? r.ms)} ms of CPU`);
  assert.ok(r.peakMiB !== null && r.peakMiB < 200, `peak RSS ${r.peakMiB?.toFixed(0)} MiB for a ${(payloadBytes / 2 ** 30).toFixed(1)} GiB model`);
  const report = JSON.parse(r.stdout) as { format: string; tensors: { path: string[]; shape: number[]; dtype: string }[] };
  assert.equal(report.format, 'onnx');
  assert.deepEqual(
    report.tensors.map((t) => [t.path, t.shape, t.dtype]),
    [[['w'], [384 << 20], 'float32']],
  );
});
