// `ckpt verify` as a user runs it (the built dist/ckpt.js, inference in its worker thread), and the
// same work as a job in the worker pool, as the app runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Progress } from '../../../shared/convert.ts';
import type { VerifyReport } from '../../../shared/verify.ts';
import { WorkerPool } from '../../../main/jobs/pool.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { parseVerifyArgs } from '../../../main/cli/verify-command.ts';
import { runCli } from '../../helpers/run-cli.ts';
import { fx, MODEL, NPZ, sample, tempDir, TORCH } from './helpers.ts';

const base = ['verify', '--model', MODEL, '--data', NPZ, '--device', 'cpu'];

test('PASS exits 0 and prints the verdict, binding, runs and comparison', () => {
  const r = runCli([...base, sample('dp.pt'), '--against', sample('checkpoint.pth.tar')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^verify\s+PASS\n\s+- logits are bit-identical to the source checkpoint on all 360 samples/);
  assert.match(
    r.stdout,
    /binding\s+2 bound, 4 recomputed \(BatchNorm folds\), 0 unconfirmed, 0 graph constants; 100\.00% of the graph's weights from the checkpoint, 100\.00% of the checkpoint's parameters reached the graph/,
  );
  assert.match(r.stdout, /checkpoint dp\.pt\s+top-1 98\.89% \(356\/360\)/);
  assert.match(r.stdout, /against\s+checkpoint\.pth\.tar\s+top-1 98\.89% .*recorded best_acc 98\.89%/);
  assert.match(
    r.stdout,
    /compare\s+checkpoint vs against: accuracy Δ \+0\.00 pp; identical predictions 100\.00%; max \|Δlogit\| 0; max relative 0; bit-identical yes/,
  );
});

test('FAIL exits 1; --json prints the report; --report writes JSON and a self-contained HTML page', () => {
  const dir = tempDir();
  const html = join(dir, 'r.html');
  const json = join(dir, 'r.json');
  const r = runCli([...base, fx('corrupt_bn.pt'), '--against', sample('cpu.pt'), '--json', '--report', html, '--report', json]);
  assert.equal(r.code, 1, r.stderr);
  const rep = JSON.parse(r.stdout) as VerifyReport;
  assert.equal(rep.verdict, 'FAIL');
  assert.deepEqual(rep.runs[1]!.metrics.predictions, TORCH.predictions);
  assert.deepEqual(JSON.parse(readFileSync(json, 'utf8')).comparison, rep.comparison);
  const page = readFileSync(html, 'utf8');
  assert.match(page, /^<!doctype html>/);
  assert.match(page, /class="verdict fail">FAIL</);
  assert.ok((page.match(/<svg /g) ?? []).length >= 4, 'charts: Δlogit histogram, per-class accuracy, two confusion matrices');
  assert.doesNotMatch(page, /(src|href)\s*=|https?:\/\/|@import|url\(/i, 'no external assets');
  assert.doesNotMatch(page, /<script(?! type="application\/json")/, 'no code runs');
  const embedded = JSON.parse(/<script type="application\/json" id="report">(.*)<\/script>/s.exec(page)![1]!) as VerifyReport;
  assert.equal(embedded.comparison.maxAbsLogitDiff, rep.comparison.maxAbsLogitDiff);
  assert.deepEqual(embedded.binding.counts, rep.binding.counts);
});

test('input errors exit 2 with one line', () => {
  const cases: [string[], RegExp][] = [
    [['verify', sample('cpu.pt'), '--data', NPZ], /usage: say which model to run: --model graph\.onnx .* or --model-class file\.py:ClassName/],
    [['verify', '--model', MODEL, sample('cpu.pt')], /usage: say which test set to run/],
    [[...base], /usage: verify takes one checkpoint/],
    [[...base, sample('cpu.pt'), '--batch-size', 'x'], /usage: --batch-size takes a whole number, not 'x'/],
    [[...base, sample('cpu.pt'), '--resize', 'lanczos'], /usage: --resize takes bilinear, area, nearest, not 'lanczos'/],
    [[...base, sample('cpu.pt'), '--report', 'r.pdf'], /usage: --report writes \.html or \.json files/],
    [[...base, sample('missing.pt')], /error: the checkpoint: .*missing\.pt: no such file/],
    [['verify', '--model', sample('cpu.pt'), '--data', NPZ, sample('cpu.pt')], /^ckpt: error: .*cpu\.pt/],
    [[...base, sample('cpu.pt'), '--bogus'], /usage: Unknown option '--bogus'/],
    [[...base, sample('cpu.pt'), '--model-class', 'm.py:M'], /usage: --model and --model-class are two ways to give the architecture; pass one/],
    [
      ['verify', '--data', NPZ, '--model-class', 'm.py:M', '--model-args', '[1]', sample('cpu.pt')],
      /usage: --model-args takes a JSON object of keyword arguments/,
    ],
    [[...base, sample('cpu.pt'), '--python', '/usr/bin/python3'], /usage: --python and --model-args go with --model-class/],
  ];
  for (const [args, re] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(runCli(['verify', '--help']).code, 0);
  assert.match(runCli(['help', 'verify']).stdout, /ckpt verify --model graph\.onnx/);
});

test('options parse into VerifyOptions', () => {
  const p = parseVerifyArgs([
    '--model',
    'g.onnx',
    '--data',
    'd',
    'c.pt',
    '--layout',
    'nhwc',
    '--size',
    '224x224',
    '--mean',
    '0.485,0.456,0.406',
    '--std',
    '0.229,0.224,0.225',
    '--resize',
    'area',
    '--atol',
    '0',
    '--trust-names',
    '--bn-eps',
    '0.001',
    '--limit',
    '10',
    '--device',
    'cuda:1',
  ]);
  assert.ok(p !== 'help');
  assert.deepEqual(p.options, {
    model: 'g.onnx',
    data: 'd',
    checkpoint: 'c.pt',
    against: null,
    device: 'cuda:1',
    limit: 10,
    atol: 0,
    trustNames: true,
    bnEps: 0.001,
    preprocess: { layout: 'NHWC', height: 224, width: 224, resize: 'area', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  });
});

test("the 'verify' job runs in the worker pool with progress, and a cancelled one rejects as cancelled", async () => {
  const pool = new WorkerPool(1);
  try {
    const seen: Progress[] = [];
    const r = await pool.run(
      { kind: 'verify', options: { model: MODEL, data: NPZ, checkpoint: sample('cuda1.pt'), against: sample('cpu.pt'), device: 'cpu' } },
      { onProgress: (p) => seen.push(p) },
    );
    assert.equal(r.verdict, 'PASS');
    assert.ok(seen.some((p) => p.unit === 'samples' && p.done === 360 && p.total === 360));
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(
      pool.run({ kind: 'verify', options: { model: MODEL, data: NPZ, checkpoint: sample('cpu.pt') } }, { signal: controller.signal }),
      (e: CheckpointError) => e.kind === 'cancelled',
    );
    await assert.rejects(
      pool.run({ kind: 'verify', options: { model: MODEL, data: NPZ, checkpoint: sample('nope.pt') } }),
      (e: CheckpointError) => e.kind === 'io',
    );
  } finally {
    await pool.close();
  }
});
