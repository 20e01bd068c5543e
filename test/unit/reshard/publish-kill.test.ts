// Re-shard publishing killed at every window (issue 16). The CLI pauses at a named step when
// CKPT_TEST_PAUSE_AT says so; the test SIGKILLs it there, then the recovery the next run performs
// (recoverInterruptedPublishes, run by Staging.create) must leave the destination wholly old
// (killed before the commit point) or wholly new (after it), with no hidden leftovers, and never
// delete an original parked in a dead run's staging folder. Needs `npm run build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { recoverInterruptedPublishes } from '../../../main/io/publish-journal.ts';
import { killAt } from '../../helpers/kill-at.ts';
import { runCli } from '../../helpers/run-cli.ts';
import { fx, tmp } from './helpers.ts';

const OLD_INPUT = fx('torch/cpu_state_dict.pt');
const NEW_INPUT = fx('torch/dp_state_dict.pt');

/**
 * sha256 of every file under `dir` whose name starts with `prefix` (a folder: all its files). A
 * DCP `.metadata` differs from run to run, so it is described by the keys it names instead.
 */
function snapshot(dir: string, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n === '.metadata') out[relative(dir, p)] = readFileSync(p).includes('module.conv1.weight') ? 'module.* keys' : 'plain keys';
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  for (const n of readdirSync(dir)) {
    if (!n.startsWith(prefix)) continue;
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p);
    else out[n] = createHash('sha256').update(readFileSync(p)).digest('hex');
  }
  return out;
}

const hidden = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith('.'));

/** The old and the new output made once, for comparison, and a fresh copy of the old per case. */
function prepare(target: string[], out: string): { old: Record<string, string>; fresh: Record<string, string>; base: string } {
  const ref = tmp();
  assert.equal(runCli(['reshard', OLD_INPUT, ...target, '-o', join(ref, out)]).code, 0);
  const old = snapshot(ref, out.replace(/\.pt$/, ''));
  const refNew = tmp();
  assert.equal(runCli(['reshard', NEW_INPUT, ...target, '-o', join(refNew, out)]).code, 0);
  const fresh = snapshot(refNew, out.replace(/\.pt$/, ''));
  assert.notDeepEqual(old, fresh);
  return { old, fresh, base: ref };
}

test('--to dcp:2 --force over an existing DCP folder, killed in each window: old or new folder, never missing, no .ckpt-old-* left', async () => {
  const target = ['--to', 'dcp:2'];
  const { old, fresh, base } = prepare(target, 'dcp');
  const windows: [string, 'old' | 'new'][] = [
    ['folder:journal-written', 'old'],
    ['folder:old-parked', 'old'],
    ['folder:new-in-place', 'new'],
    ['folder:old-removed', 'new'],
  ];
  for (const [step, expect] of windows) {
    const dir = tmp();
    cpSync(join(base, 'dcp'), join(dir, 'dcp'), { recursive: true });
    await killAt(step, ['reshard', NEW_INPUT, ...target, '-o', join(dir, 'dcp'), '--force']);
    assert.ok(
      hidden(dir).some((n) => n.includes('.ckpt-publish-')),
      `${step}: the journal marks the interrupted publish`,
    );
    const done = recoverInterruptedPublishes(dir);
    assert.deepEqual(
      done.map((d) => d.action),
      [expect === 'old' ? 'rolled-back' : 'finished'],
      step,
    );
    assert.deepEqual(snapshot(dir, 'dcp'), expect === 'old' ? old : fresh, `${step}: the destination is wholly ${expect}`);
    assert.deepEqual(hidden(dir), [], `${step}: nothing hidden is left`);
  }
  // the next run does the recovery itself, then publishes
  const dir = tmp();
  cpSync(join(base, 'dcp'), join(dir, 'dcp'), { recursive: true });
  await killAt('folder:old-parked', ['reshard', NEW_INPUT, ...target, '-o', join(dir, 'dcp'), '--force']);
  assert.equal(existsSync(join(dir, 'dcp')), false, 'in that window the destination is parked');
  const again = runCli(['reshard', NEW_INPUT, ...target, '-o', join(dir, 'dcp'), '--force']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(snapshot(dir, 'dcp'), fresh);
  assert.deepEqual(hidden(dir), []);
});

test('--to ranks:4 without --force, killed after 2 of 4 moves: the next run rolls back the 2 rank files', async () => {
  const target = ['--to', 'ranks:4'];
  const { fresh } = prepare(target, 'out.pt');
  for (const [step, expect] of [
    ['files:journal-written', 'none'],
    ['files:moved-1', 'none'],
    ['files:committed', 'new'],
  ] as const) {
    const dir = tmp();
    await killAt(step, ['reshard', NEW_INPUT, ...target, '-o', join(dir, 'out.pt')]);
    if (step === 'files:moved-1') assert.equal(readdirSync(dir).filter((n) => /^out\.rank\d\.pt$/.test(n)).length, 2, 'killed with 2 of 4 published');
    recoverInterruptedPublishes(dir);
    assert.deepEqual(snapshot(dir, 'out'), expect === 'new' ? fresh : {}, `${step}: all 4 rank files or none`);
    assert.deepEqual(hidden(dir), [], `${step}: nothing hidden is left`);
  }
});

test('--to ranks:4 --force over old ranks, killed in each window: never a mix, and parked originals are never deleted', async () => {
  const target = ['--to', 'ranks:4'];
  const { old, fresh, base } = prepare(target, 'out.pt');
  for (const [step, expect] of [
    ['files:journal-written', 'old'],
    ['files:moved-0', 'old'],
    ['files:moved-2', 'old'],
    ['files:committed', 'new'],
  ] as const) {
    const dir = tmp();
    for (const n of Object.keys(old)) cpSync(join(base, n), join(dir, n));
    await killAt(step, ['reshard', NEW_INPUT, ...target, '-o', join(dir, 'out.pt'), '--force']);
    if (step === 'files:moved-2') {
      // the originals of ranks 0-2 are parked in the dead run's staging folder; a run into the
      // same folder must put them back, not remove the folder as a stale leftover
      const staging = hidden(dir).find((n) => n.includes('.ckpt-tmp-'))!;
      assert.equal(readdirSync(join(dir, staging)).filter((n) => n.endsWith('.replaced')).length, 3);
      const again = runCli(['reshard', NEW_INPUT, ...target, '-o', join(dir, 'out.pt')]);
      assert.equal(again.code, 2, 'without --force the restored originals are not replaced');
      assert.match(again.stderr, /already exists; pass --force/);
      assert.deepEqual(snapshot(dir, 'out'), old, 'the originals were put back');
      assert.deepEqual(hidden(dir), []);
      continue;
    }
    recoverInterruptedPublishes(dir);
    assert.deepEqual(snapshot(dir, 'out'), expect === 'old' ? old : fresh, `${step}: the rank files are wholly ${expect}`);
    assert.deepEqual(hidden(dir), [], `${step}: nothing hidden is left`);
  }
});
