// Every real-world checkpoint in ../shared/corpus/real is inspected without a crash, and what the
// engine finds agrees with the corpus manifest (tensor counts, dtypes, device tags).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { CORPUS_DIR, sharedSkipReason } from '../../helpers/shared-dir.ts';

const skip = sharedSkipReason();

/** Files the engine rejects on purpose, with the error kind it must give. */
const EXPECTED_ERRORS: Record<string, string> = {
  // the manifest marks it CORRUPT/TRUNCATED: a torch zip cut off before its central directory
  'Katherine121__Pytorch-implementation-of-Mobile-Former__checkpoint.pth.tar': 'truncated',
  // shard indexes whose shard files are not in the corpus
  '1rin__openllama-chinese-english-3b__pytorch_model.bin.index.json': 'io',
  'jeremieconte__granite-3.1-1b-a400m-instruct__model.safetensors.index.json': 'io',
};

const ABBREV: Record<string, string> = {
  f32: 'float32',
  f64: 'float64',
  f16: 'float16',
  bf16: 'bfloat16',
  i64: 'int64',
  i32: 'int32',
  i16: 'int16',
  i8: 'int8',
  u8: 'uint8',
  bool: 'bool',
  qint8: 'qint8',
  quint8: 'quint8',
  c64: 'complex64',
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  U16: 'uint16',
  U32: 'uint32',
  BOOL: 'bool',
};

interface Row {
  file: string;
  format: string;
  notes: string;
}
function manifest(): Row[] {
  const lines = readFileSync(join(CORPUS_DIR, 'MANIFEST.tsv'), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => {
    const c = l.split('\t');
    return { file: c[0]!, format: c[5]!, notes: c[6]! };
  });
}

const rows = skip ? [] : manifest();
test('corpus manifest lists the real checkpoints', { skip: skip ?? false }, () => {
  assert.ok(rows.length >= 70, `manifest has ${rows.length} rows`);
  const onDisk = readdirSync(CORPUS_DIR).filter((f) => f !== 'MANIFEST.tsv');
  assert.equal(onDisk.length, rows.length);
});

for (const row of rows) {
  test(`corpus: ${row.file}`, () => {
    const file = join(CORPUS_DIR, row.file);
    const expected = EXPECTED_ERRORS[row.file];
    let c;
    try {
      c = openCheckpoint(file);
    } catch (e) {
      assert.ok(e instanceof CheckpointError, `a typed error, not ${String(e)}`);
      assert.ok(expected, `unexpected ${e.kind} error: ${e.message}`);
      assert.equal(e.kind, expected);
      assert.ok(!e.message.includes('\n'), 'one-line message');
      return;
    }
    try {
      assert.equal(expected, undefined, `expected a ${expected} error`);
      const r = c.report;
      const formatOf: Record<string, string[]> = {
        zip: ['torch-zip'],
        legacy: ['torch-legacy', 'torch-tar'],
        torchscript: ['torchscript'],
        safetensors: ['safetensors'],
      };
      if (formatOf[row.format]) assert.ok(formatOf[row.format]!.includes(r.format), `format ${r.format} for a ${row.format} file`);
      const auto = row.notes.split('[auto]')[1] ?? '';
      const count = /(\d+) tensors/.exec(auto);
      // the manifest counts tensor objects; the engine lists each path to a tied tensor, so ≥
      if (count) assert.ok(r.totals.tensors >= Number(count[1]), `tensors: ${r.totals.tensors} < manifest ${count[1]}`);
      const dtypes = /dtypes=([^;]+)/.exec(auto)?.[1];
      if (dtypes) {
        const want = new Set(
          dtypes
            .split(/[/,]/)
            .map((d) => d.split(':')[0]!)
            .map((d) => ABBREV[d] ?? d),
        );
        assert.deepEqual(new Set(Object.keys(r.totals.byDtype)), want, 'dtype set');
        for (const part of dtypes.split(',')) {
          const [d, n] = part.split(':');
          if (n) assert.equal(r.totals.byDtype[ABBREV[d!]!]?.tensors, Number(n), `${d} count`);
        }
      }
      const loc = /location=([^;]+)/.exec(auto)?.[1];
      if (loc && r.totals.tensors > 0) assert.deepEqual(new Set(Object.keys(r.layout.devices)), new Set(loc.split('/')), 'device tags');
      if (/module\.' prefix/.test(auto)) assert.ok(r.layout.prefixes.includes('module.'), 'module. prefix found');
      assert.ok(['safe', 'benign', 'unknown-class', 'dangerous'].includes(r.security.verdict));
      if (/custom globals: ([\w.]+)/.test(auto)) assert.equal(r.security.verdict, 'unknown-class');
      JSON.stringify(r); // the report is plain data
    } finally {
      c.close();
    }
  });
}
