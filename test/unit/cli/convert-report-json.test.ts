// The convert report's --json line is written in pieces for files of many tensors; the bytes are
// exactly JSON.stringify's, for one output and for several (ddp ranks), with failed checks too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeReportJson } from '../../../main/cli/convert-command.ts';
import type { ConversionReport, OutputReport, TensorCheck } from '../../../shared/convert.ts';

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

test('writeReportJson: the same bytes as one JSON.stringify, in pieces', () => {
  for (const outputs of [
    [output('a.pt', 5)],
    [output('a.pt', 25_001)],
    [output('a.rank0.pt', 10_001), output('a.rank1.pt', 3), output('a.rank2.pt', 20_000)],
  ]) {
    const report = { source: 's.pt', outputs, verified: false, seconds: 1.5, bytesCopied: 9 } as unknown as ConversionReport;
    const pieces: string[] = [];
    writeReportJson({ stdout: (s) => void pieces.push(s) }, report);
    assert.equal(pieces.join(''), JSON.stringify({ event: 'report', report }) + '\n');
    if (outputs.some((o) => o.checks.length > 10_000)) assert.ok(pieces.length > 3, 'written in pieces');
  }
});
