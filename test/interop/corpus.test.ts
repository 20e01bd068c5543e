// Every real-world checkpoint in ../shared/corpus/real that `ckpt inspect` reads converts to cpu
// with verified: true, and for the torch formats (zip / legacy) torch 1.13 loads the output with a
// map_location-free torch.load and finds the source's tensors, bit for bit. The corpus is read in
// place; outputs go to a temp folder.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CORPUS_DIR, sharedSkipReason } from '../helpers/shared-dir.ts';
import {
  CORES,
  checkWithTorch,
  mapLimit,
  oneErrorLine,
  removeTemps,
  reportOf,
  runCliAsync,
  tempDir,
  torchSkipReason,
  type CliRun,
  type PyResult,
} from './helpers.ts';

const skip = torchSkipReason() ?? sharedSkipReason();

/**
 * Corpus files that do not convert, and why. `inspect`: `ckpt inspect` itself refuses the file (so
 * convert is not expected to take it); `convert`: inspect reads it, convert does not.
 */
const EXPECTED_FAILURES: Record<string, { stage: 'inspect' | 'convert'; code: number; reason: RegExp; why: string }> = {
  '1rin__openllama-chinese-english-3b__pytorch_model.bin.index.json': {
    stage: 'inspect',
    code: 2,
    reason: /shard files are missing/,
    why: 'shard index whose shards are not in the corpus',
  },
  'jeremieconte__granite-3.1-1b-a400m-instruct__model.safetensors.index.json': {
    stage: 'inspect',
    code: 2,
    reason: /shard files are missing/,
    why: 'shard index whose shards are not in the corpus',
  },
  'Katherine121__Pytorch-implementation-of-Mobile-Former__checkpoint.pth.tar': {
    stage: 'inspect',
    code: 2,
    reason: /truncated/,
    why: 'a torch zip cut off before its central directory',
  },
};

interface Row {
  file: string;
  format: string;
}
const rows: Row[] = skip
  ? []
  : readFileSync(join(CORPUS_DIR, 'MANIFEST.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => {
        const c = l.split('\t');
        return { file: c[0]!, format: c[5]! };
      });

interface Outcome {
  row: Row;
  inspect?: CliRun;
  verdict?: string;
  convert?: CliRun;
  output: string;
  py?: PyResult;
}
const outcomes = new Map<string, Outcome>();
let pyResults = new Map<string, PyResult>();
after(removeTemps);

before(async () => {
  if (skip) return;
  const out = tempDir('corpus');
  await mapLimit(rows, CORES + 1, async (row, i) => {
    const o: Outcome = { row, output: join(out, `${i}.pt`) };
    outcomes.set(row.file, o);
    const src = join(CORPUS_DIR, row.file);
    o.inspect = await runCliAsync(['inspect', src, '--json']);
    if (o.inspect.code !== 0) return;
    o.verdict = JSON.parse(o.inspect.stdout).security?.verdict;
    // content torch.load(weights_only=True) refuses (numpy, whole models, classes) is carried unchanged only with --keep-objects
    o.convert = await runCliAsync(['convert', src, '--preset', 'cpu', '-o', o.output, '--json', ...(o.verdict === 'safe' ? [] : ['--keep-objects'])]);
  });
  const checks = [];
  for (const o of outcomes.values()) {
    if (o.convert?.code !== 0) continue;
    if (o.row.format === 'torchscript') checks.push({ id: o.row.file, kind: 'torchscript', file: o.output });
    else
      checks.push({
        id: o.row.file,
        kind: 'corpus',
        source: join(CORPUS_DIR, o.row.file),
        output: o.output,
        format: o.row.format,
        dangerous: o.verdict === 'dangerous',
      });
  }
  pyResults = checkWithTorch(checks);
  const summary = [...outcomes.values()].map((o) => {
    const p = pyResults.get(o.row.file);
    const how = p
      ? (p.info['output_load'] ?? (p.errors.length ? 'not loadable' : p.info['jit_load']))
      : EXPECTED_FAILURES[o.row.file]
        ? `expected failure (${EXPECTED_FAILURES[o.row.file]!.stage})`
        : '-';
    const n = p?.info['tensors'] !== undefined ? `${p.info['tensors']} tensors` : '';
    return `#   ${o.row.format.padEnd(11)} ${String(how).padEnd(16)} ${n.padEnd(12)} ${o.row.file}`;
  });
  console.log(`# corpus: how torch 1.13 loads each converted file\n${summary.join('\n')}`);
});

test('the corpus is there and every file is covered', { skip: skip ?? false }, () => {
  const onDisk = readdirSync(CORPUS_DIR)
    .filter((f) => f !== 'MANIFEST.tsv')
    .sort();
  assert.deepEqual(rows.map((r) => r.file).sort(), onDisk);
  for (const f of Object.keys(EXPECTED_FAILURES)) assert.ok(onDisk.includes(f), `expected-failure entry ${f} is in the corpus`);
});

for (const row of rows) {
  const expected = EXPECTED_FAILURES[row.file];
  test(`corpus → cpu: ${row.file}`, { skip: skip ?? false }, () => {
    const o = outcomes.get(row.file)!;
    if (expected?.stage === 'inspect') {
      assert.equal(o.inspect!.code, expected.code, 'inspect refuses it');
      assert.match(oneErrorLine(o.inspect!.stderr), expected.reason);
      return;
    }
    assert.equal(o.inspect!.code, 0, `inspect reads it: ${o.inspect!.stderr}`);
    const c = o.convert!;
    if (row.format === 'torchscript' && c.code === 2) {
      // refused on purpose: TorchScript holds code; the line says how to load it instead
      assert.match(oneErrorLine(c.stderr), /TorchScript.*torch\.jit\.load/);
      return;
    }
    if (expected) {
      assert.equal(c.code, expected.code, c.stderr);
      const rep = reportOf(c.stdout);
      assert.equal(rep.verified, false);
      assert.match(rep.outputs[0]?.mismatch ?? '', expected.reason);
      return;
    }
    assert.equal(c.code, 0, `convert: ${c.stderr}`);
    const rep = reportOf(c.stdout);
    assert.equal(rep.verified, true);
    assert.ok(rep.outputs.every((x) => x.verified));
    const p = pyResults.get(row.file)!;
    assert.ok(p, 'checked with torch');
    assert.deepEqual(p.errors, [], p.errors.join('\n'));
    if (row.format === 'zip' || row.format === 'legacy') {
      assert.ok(['full', 'weights_only', 'stubbed'].includes(p.info['output_load']));
      assert.equal(p.info['source_load_error'], undefined, `the source loads too: ${p.info['source_load_error']}`);
      assert.equal(p.info['output_load'], p.info['source_load'], 'the output loads exactly like the source');
    }
  });
}
