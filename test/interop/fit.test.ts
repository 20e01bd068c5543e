// `ckpt fit` and `ckpt convert --fit` on the cases generate_fit.py made with real torch 1.13:
// what strict=True says must be torch's own message (captured by the generator), and every
// fitted output must load into the REAL target model, bit-identical to its source.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FitReport } from '../../shared/fit.ts';
import { FIXTURES, jsonLines, oneErrorLine, removeTemps, runCliAsync, runPython, tempDir, torchSkipReason, type CliRun } from './helpers.ts';

const skip = torchSkipReason();
const DIR = join(FIXTURES, 'fit');
interface FitCase {
  name: string;
  source: string;
  target: string;
  model: string;
  kwargs: Record<string, number>;
  error: string;
}
const cases = (JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as { fit: FitCase[] }).fit;
const byName = (n: string): FitCase => cases.find((c) => c.name === n)!;
const out = skip ? '' : tempDir('fit');
const fits = new Map<string, FitReport>();
const converts = new Map<string, CliRun>();

before(async () => {
  if (skip) return;
  for (const c of cases) {
    const r = await runCliAsync(['fit', join(DIR, c.source), join(DIR, c.target), '--json']);
    fits.set(c.name, JSON.parse(r.stdout) as FitReport);
    converts.set(c.name, await runCliAsync(['convert', join(DIR, c.source), '--fit', join(DIR, c.target), '-o', join(out, `${c.name}.pt`), '--json']));
  }
});
after(removeTemps);

test("before the rules: the message is torch 1.13's own, word for word (captured from load_state_dict)", { skip: skip ?? false }, () => {
  for (const c of cases.filter((x) => x.error)) {
    const msg = fits.get(c.name)!.message!;
    const torchSaid = c.error.replace(/^RuntimeError: /, '').replace(/\n$/, '');
    assert.equal(msg.slice(msg.indexOf(':\n')), torchSaid.slice(torchSaid.indexOf(':\n')), c.name);
  }
});

test('the rules: wrapper prefixes, the Lightning container, renames with confidence, heads named', { skip: skip ?? false }, () => {
  const kinds = (n: string): string[] => fits.get(n)!.rules.map((r) => r.kind);
  assert.deepEqual(kinds('dp'), ['strip-prefix']);
  assert.equal(fits.get('dp')!.rules[0]!.from, 'module.');
  assert.deepEqual(kinds('lightning'), ['unwrap', 'strip-prefix']);
  assert.equal(fits.get('lightning')!.rules[1]!.from, 'model.');
  assert.equal(fits.get('compiled_dp_error')!.target.kind, 'load-error');
  assert.equal(fits.get('compiled_dp_error')!.rules[0]!.from, '_orig_mod.module.');
  const renames = fits
    .get('renamed')!
    .rules.filter((r) => r.kind === 'rename')
    .map((r) => `${r.from}→${r.to}`)
    .sort();
  assert.deepEqual(renames, [
    'blocks.0.bn→layers.0.norm',
    'blocks.0.conv→layers.0.conv',
    'blocks.1.bn→layers.1.norm',
    'blocks.1.conv→layers.1.conv',
    'bn1→stem.norm',
    'conv1→stem.conv',
    'fc→classifier',
  ]);
  for (const r of fits.get('renamed')!.rules) assert.ok(r.confidence! > 0.5 && r.confidence! <= 1);
  for (const n of ['head', 'head_shapes'])
    assert.deepEqual(
      fits
        .get(n)!
        .rules.filter((r) => r.kind === 'exclude-head')
        .map((r) => r.from),
      ['fc.weight', 'fc.bias'],
    );
  assert.deepEqual(kinds('lightning_forward'), ['unwrap', 'strip-prefix']);
  assert.equal(fits.get('lightning_forward')!.rules[1]!.from, '_forward_module.');
  for (const n of ['dp', 'lightning', 'lightning_forward', 'compiled_dp_error', 'renamed', 'head']) {
    assert.equal(fits.get(n)!.fits, true, n);
    assert.equal(fits.get(n)!.after.message, null, n);
  }
  assert.equal(fits.get('head_shapes')!.fits, false);
  assert.equal(fits.get('head_shapes')!.loadsNonStrict, true);
  assert.deepEqual(fits.get('head_shapes')!.after.missing, ['fc.weight', 'fc.bias']);
});

test('the ambiguous case asks and writes nothing', { skip: skip ?? false }, () => {
  const f = fits.get('ambiguous')!;
  assert.equal(f.fits, false);
  assert.deepEqual(
    f.ambiguous.map((a) => [a.checkpoint, a.model]),
    [[['proj'], ['query', 'key']]],
  );
  assert.equal(f.rules.filter((r) => r.kind === 'rename').length, 0, 'no guess');
  const run = converts.get('ambiguous')!;
  assert.equal(run.code, 2);
  assert.match(oneErrorLine(run.stderr), /^ckpt: usage: .*proj could be any of query, key.*nothing was written$/);
  assert.equal(existsSync(join(out, 'ambiguous.pt')), false);
});

test('every fitted output loads into the real target model in torch 1.13, bit-identical', { skip: skip ?? false }, () => {
  const checks = cases
    .filter((c) => c.name !== 'ambiguous')
    .map((c) => {
      const run = converts.get(c.name)!;
      assert.equal(run.code, 0, `${c.name}: ${run.stderr}`);
      const lines = jsonLines(run.stdout);
      assert.equal(lines[1].report.verified, true);
      const fit = lines[0].fit as FitReport;
      const mapping: Record<string, string> = {};
      for (const m of fit.mapping) if (m.to) mapping[m.to] = m.from;
      const filled: Record<string, string> = {};
      for (const r of fit.rules) if (r.kind === 'exclude-head' && c.target.endsWith('.pt')) filled[r.to!] = join(DIR, c.target);
      return {
        id: c.name,
        output: join(out, `${c.name}.pt`),
        model: c.model,
        kwargs: c.kwargs,
        strict: fit.fits,
        source: join(DIR, c.source),
        under: c.name.startsWith('lightning') ? ['state_dict'] : [],
        mapping,
        filled,
        expect_missing: fit.fits ? [] : fit.after.missing,
      };
    });
  const res = runPython<{ torch: string; results: { id: string; errors: string[] }[] }>('check_fit.py', { fixtures_dir: FIXTURES, checks });
  assert.equal(res.results.length, checks.length);
  for (const r of res.results) assert.deepEqual(r.errors, [], r.id);
});

test('the pasted error alone is enough: no checkpoint target needed for _orig_mod.module.', { skip: skip ?? false }, () => {
  const f = fits.get('compiled_dp_error')!;
  assert.equal(f.target.className, 'SmallCNN');
  assert.equal(
    f.mapping.every((m) => m.to === m.from.replace(/^_orig_mod\.module\./, '')),
    true,
  );
  assert.ok(byName('compiled_dp_error').error.includes('Unexpected key(s) in state_dict: "_orig_mod.module.conv1.weight"'));
});

test("Lightning's 'model.' and '_forward_module.': layout detection names them, the cpu preset strips them, torch loads the result strictly", {
  skip: skip ?? false,
}, async () => {
  const checks = [];
  for (const [name, prefix] of [
    ['lightning', 'model.'],
    ['lightning_forward', '_forward_module.'],
  ] as const) {
    const src = join(DIR, `${name}.pt`);
    const ins = await runCliAsync(['inspect', src, '--json']);
    assert.deepEqual(JSON.parse(ins.stdout).layout.prefixes, [prefix], name);
    const output = join(out, `${name}.cpu.pt`);
    const run = await runCliAsync(['convert', src, '--preset', 'cpu', '--unwrap', '-o', output, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const keys = fits.get(name)!.mapping;
    const mapping: Record<string, string> = {};
    for (const m of keys) mapping[m.from.slice(prefix.length)] = m.from;
    checks.push({
      id: `${name} cpu`,
      output,
      model: 'SmallCNN',
      kwargs: {},
      strict: true,
      source: src,
      under: ['state_dict'],
      mapping,
      filled: {},
      expect_missing: [],
    });
  }
  const res = runPython<{ results: { id: string; errors: string[] }[] }>('check_fit.py', { fixtures_dir: FIXTURES, checks });
  for (const r of res.results) assert.deepEqual(r.errors, [], r.id);
});
