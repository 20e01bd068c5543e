// The Batch dry run on real files: the sample's checkpoints (written by torch 1.13) and a
// truncated copy of one. The truncated file fails with its one-line reason before anything
// runs; the others say what the conversion changes, as the conversion then does it.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkPlannedItems } from '../../../main/jobs/batch-dry-run.ts';
import { planBatch } from '../../../main/jobs/batch.ts';
import { NO_RULES } from '../../../shared/presets.ts';
import { SAMPLE, tempDir } from '../service/helpers.ts';

const DIGITS = join(SAMPLE, 'digits-cnn');
const dir = tempDir('batch-dry-run');
after(() => rmSync(dir, { recursive: true, force: true }));

function dryRun(rules: typeof NO_RULES) {
  const input = join(dir, 'in');
  const { items, units } = planBatch({ input, outDir: join(dir, 'out'), rules, force: false });
  checkPlannedItems(items, units, input);
  return new Map(items.map((i) => [i.sources[0]!, i]));
}

test('a truncated file fails with one line; the others say what changes', () => {
  mkdirSync(join(dir, 'in'), { recursive: true });
  for (const f of ['cpu.pt', 'dp.pt', 'cuda1.pt']) copyFileSync(join(DIGITS, f), join(dir, 'in', f));
  const dp = readFileSync(join(DIGITS, 'dp.pt'));
  writeFileSync(join(dir, 'in', 'truncated.pt'), dp.subarray(0, Math.floor(dp.length / 2)));

  const items = dryRun({ ...NO_RULES, preset: { name: 'cpu' } });
  const bad = items.get('truncated.pt')!;
  assert.equal(bad.status, 'failed');
  assert.equal(bad.unreadable, true);
  assert.match(bad.reason!, /^truncated\.pt: /, 'named as in the list');
  assert.ok(!bad.reason!.includes(dir), bad.reason);
  assert.doesNotMatch(bad.reason!, /\n|at .*\.ts:\d+/, 'one line, no stack');
  assert.equal(bad.change, undefined);

  assert.equal(items.get('dp.pt')!.status, 'pending');
  assert.equal(items.get('dp.pt')!.change, '16 keys renamed (module. removed) · cuda:0→cpu 16 tensors');
  assert.equal(items.get('cuda1.pt')!.change, 'cuda:1→cpu 16 tensors');
  assert.equal(items.get('cpu.pt')!.change, 'no key or device changes: a plain copy');

  // dp keeps the keys' module. prefix and moves everything to cuda:0
  const toDp = dryRun({ ...NO_RULES, preset: { name: 'dp' } });
  assert.equal(toDp.get('cpu.pt')!.change, '16 keys renamed (module. added) · cpu→cuda:0 16 tensors');
  assert.equal(toDp.get('dp.pt')!.change, 'no key or device changes: a plain copy');
});
