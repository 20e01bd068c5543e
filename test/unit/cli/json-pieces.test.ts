// inspect --json and convert --json write their reports in pieces (the tensor list or checks of a
// 500,000-tensor file are 120 MB of text): the bytes must be exactly JSON.stringify(...) + '\n'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { writeJsonInPieces } from '../../../main/cli/json-pieces.ts';
import type { InspectReport } from '../../../shared/inspect.ts';
import type { ConversionReport, OutputReport, TensorCheck } from '../../../shared/convert.ts';

const piecesOf = async (report: InspectReport): Promise<string[]> => {
  const pieces: string[] = [];
  await writeJsonInPieces(report, [report.tensors], (s) => pieces.push(s));
  return pieces;
};

test('inspect report: byte for byte JSON.stringify(report) + newline, across chunk boundaries and with no tensors', async () => {
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

test('inspect report: a tensor list written as text (`json`) gives the bytes its objects (`items`) give', async () => {
  for (const file of ['test/fixtures/torch/whole_model_dp.pt', 'test/fixtures/torch/compiled_dp_prefix.pt']) {
    const ck = openCheckpoint(file);
    try {
      const whole = JSON.stringify(ck.report) + '\n';
      const [pieces, standIn] = [ck.tensorInfoPieces(), [] as unknown[]];
      const r = { ...ck.report, tensors: standIn } as unknown as InspectReport;
      const out: string[] = [];
      // `items` would throw if it were asked after `json` made the same range: the list is made once, in order
      await writeJsonInPieces(r, [{ at: standIn, length: pieces.length, items: pieces.items, json: pieces.json }], (s) => void out.push(s));
      assert.equal(out.join(''), whole, file);
    } finally {
      ck.close();
    }
  }
});

test('inspect report: the tensor list written as UTF-8 bytes (`utf8`, as the CLI writes it) gives the same bytes, in order with the text', async () => {
  for (const file of ['test/fixtures/torch/whole_model_dp.pt', 'test/fixtures/torch/compiled_dp_prefix.pt']) {
    const ck = openCheckpoint(file);
    try {
      const whole = Buffer.from(JSON.stringify(ck.report) + '\n', 'utf8');
      const [pieces, standIn] = [ck.tensorInfoPieces(), [] as unknown[]];
      const r = { ...ck.report, tensors: standIn } as unknown as InspectReport;
      const out: Buffer[] = [];
      let asBytes = 0;
      await writeJsonInPieces(
        r,
        [{ at: standIn, length: pieces.length, items: pieces.items, json: pieces.json, utf8: pieces.utf8 }],
        (s) => void out.push(Buffer.from(s, 'utf8')),
        undefined,
        (b) => {
          asBytes++;
          out.push(Buffer.from(b));
        },
      );
      assert.deepEqual(Buffer.concat(out), whole, file);
      assert.equal(asBytes, Math.ceil(pieces.length / 4096), `${file}: the list went as bytes`);
    } finally {
      ck.close();
    }
  }
});

test('writeJsonInPieces: waits for room after each piece of the tensor list, so a slow reader is never sent the whole report at once', async () => {
  const ck = openCheckpoint('test/fixtures/torch/compiled_dp_prefix.pt');
  try {
    const one = ck.report.tensors[0]!;
    const r = { ...ck.report, tensors: Array.from({ length: 10_000 }, (_, i) => ({ ...one, path: [`layer.${i}`] })) };
    const events: string[] = [];
    let waiting = 0;
    await writeJsonInPieces(
      r,
      [r.tensors],
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

function output(file: string, n: number): OutputReport {
  const checks: TensorCheck[] = Array.from({ length: n }, (_, i) => ({
    path: ['layers', i, 'weight \u00e9"\\'],
    sourcePath: ['module.layers', i, 'weight'],
    dtype: 'float32',
    shape: [i % 7, 3],
    device: 'cpu',
    crc32: ((i * 2654435761) >>> 0).toString(16).padStart(8, '0'),
    ok: i !== 12_345,
    ...(i === 12_345 ? { problem: 'storage bytes read back have crc32 00000000' } : {}),
  }));
  return { file, bytes: 123, storages: n, tensors: n, verified: false, mismatch: 'x', checks };
}

test('convert report: the same bytes as one JSON.stringify, for one output and several (ddp ranks), with failed checks', async () => {
  for (const outputs of [
    [output('a.pt', 5)],
    [output('a.pt', 25_001)],
    [output('a.rank0.pt', 10_001), output('a.rank1.pt', 3), output('a.rank2.pt', 20_000)],
  ]) {
    const report = { source: 's.pt', outputs, verified: false, seconds: 1.5, bytesCopied: 9 } as unknown as ConversionReport;
    const pieces: string[] = [];
    await writeJsonInPieces(
      { event: 'report', report },
      report.outputs.map((o) => o.checks),
      (s) => void pieces.push(s),
    );
    assert.equal(pieces.join(''), JSON.stringify({ event: 'report', report }) + '\n');
    if (outputs.some((o) => o.checks.length > 4096)) assert.ok(pieces.length > 3, 'written in pieces');
  }
});
