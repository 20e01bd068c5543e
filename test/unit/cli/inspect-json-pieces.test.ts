// inspect --json writes the report in pieces (the tensor list of a 500,000-tensor file is 120 MB
// of text): the bytes must be exactly JSON.stringify(report) + '\n'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { writeReportJson } from '../../../main/cli/inspect-command.ts';

const piecesOf = async (report: Parameters<typeof writeReportJson>[0]): Promise<string[]> => {
  const pieces: string[] = [];
  await writeReportJson(report, (s) => pieces.push(s));
  return pieces;
};

test('writeReportJson: byte for byte JSON.stringify(report) + newline, across chunk boundaries and with no tensors', async () => {
  const ck = openCheckpoint('test/fixtures/torch/compiled_dp_prefix.pt');
  try {
    const report = ck.report;
    const one = report.tensors[0]!;
    for (const n of [0, 1, 4096, 4097, 10_000]) {
      const r = { ...report, tensors: Array.from({ length: n }, (_, i) => ({ ...one, path: [`layer.${i}`] })) };
      const pieces = await piecesOf(r);
      assert.equal(pieces.join(''), JSON.stringify(r) + '\n', `${n} tensors`);
      assert.equal(pieces.length, 2 + Math.ceil(n / 4096), `${n} tensors: one piece per 4,096`);
    }
    assert.equal((await piecesOf(report)).join(''), JSON.stringify(report) + '\n', 'the real report');
  } finally {
    ck.close();
  }
});

test('writeReportJson: waits for room after each piece of the tensor list, so a slow reader is never sent the whole report at once', async () => {
  const ck = openCheckpoint('test/fixtures/torch/compiled_dp_prefix.pt');
  try {
    const one = ck.report.tensors[0]!;
    const r = { ...ck.report, tensors: Array.from({ length: 10_000 }, (_, i) => ({ ...one, path: [`layer.${i}`] })) };
    const events: string[] = [];
    let waiting = 0;
    await writeReportJson(
      r,
      () => {
        assert.equal(waiting, 0, 'no piece is written while the previous one waits for room');
        events.push('write');
      },
      async () => {
        waiting++;
        events.push('room');
        await new Promise((resolve) => setImmediate(resolve));
        waiting--;
      },
    );
    assert.deepEqual(events, ['write', 'write', 'room', 'write', 'room', 'write', 'room', 'write']);
  } finally {
    ck.close();
  }
});
