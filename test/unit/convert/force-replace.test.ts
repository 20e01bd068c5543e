// `convert --force` (and `reshard --to single --force`) over an existing output (issue 15): the old output gets a hidden second link
// (`.<name>.ckpt-replaced-…`) so that the rename over it does not wait while its blocks are
// freed; the link is then removed in the background. Killed at each step, the destination is the
// whole old output or the whole new, verified one, and a link left behind is removed by
// `ckpt clean` and by the next run into the folder. These outputs are small, so the test lowers the
// size from which the background path is taken (CKPT_TEST_BACKGROUND_FREE_FROM). Needs `npm run build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAt } from '../../helpers/kill-at.ts';
import { runCli } from '../../helpers/run-cli.ts';

const FIX = new URL('../../fixtures/torch/', import.meta.url).pathname;
const OLD_INPUT = join(FIX, 'cpu_state_dict.pt');
const NEW_INPUT = join(FIX, 'dtypes.pt');
const BACKGROUND = { CKPT_TEST_BACKGROUND_FREE_FROM: '0' };

const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
const tmp = (): string => mkdtempSync(join(tmpdir(), 'ckpt-force-'));
const secondLinks = (dir: string): string[] => readdirSync(dir).filter((n) => n.includes('.ckpt-replaced-'));

function convert(input: string, out: string, ...more: string[]): { code: number; report: { verified: boolean } | null; stderr: string } {
  const r = runCli(['convert', input, '--preset', 'cpu', '-o', out, '--json', ...more], { env: BACKGROUND });
  const last = r.stdout.trim().split('\n').pop();
  const line = last ? (JSON.parse(last) as { event: string; report?: { verified: boolean } }) : null;
  return { code: r.code, report: line?.event === 'report' ? (line.report ?? null) : null, stderr: r.stderr };
}

/** What `input` converts to, written fresh as `name` (the archive inside is named after it) into a folder of its own. */
function reference(input: string, name = 'out.pt'): string {
  const out = join(tmp(), name);
  assert.equal(convert(input, out).code, 0);
  return sha(out);
}
const OLD = reference(OLD_INPUT);
const NEW = reference(NEW_INPUT);

async function noSecondLinks(dir: string): Promise<string[]> {
  const until = Date.now() + 10_000;
  while (secondLinks(dir).length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return secondLinks(dir);
}

test('the fixtures convert to different outputs', () => assert.notEqual(OLD, NEW));

test('--force over an existing output: the new output is verified and in place, the old one is gone soon after', async () => {
  const dir = tmp();
  const out = join(dir, 'out.pt');
  assert.equal(convert(OLD_INPUT, out).code, 0);
  const r = convert(NEW_INPUT, out, '--force');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.report?.verified, true);
  assert.equal(sha(out), NEW, 'byte for byte what a fresh conversion writes');
  assert.deepEqual(await noSecondLinks(dir), [], 'the second link is removed in the background');
  assert.deepEqual(readdirSync(dir), ['out.pt']);
});

test('killed after the second link is made, before the rename: the old output is whole and in place; the next run replaces it and removes the link', async () => {
  const dir = tmp();
  const out = join(dir, 'out.pt');
  assert.equal(convert(OLD_INPUT, out).code, 0);
  await killAt('replace:second-link', ['convert', NEW_INPUT, '--preset', 'cpu', '-o', out, '--force'], BACKGROUND);
  assert.equal(sha(out), OLD, 'the destination is still the old output, untouched');
  const [link] = secondLinks(dir);
  assert.ok(link, 'the second link is there');
  assert.equal(sha(join(dir, link)), OLD);
  const again = convert(NEW_INPUT, out, '--force');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.report?.verified, true);
  assert.equal(sha(out), NEW);
  assert.deepEqual(await noSecondLinks(dir), [], "the killed run's link and this run's are both removed");
});

test('killed after the swap, before the old output is freed (what a killed background rm leaves): `ckpt clean` removes the link, and so does the next run', async () => {
  const dir = tmp();
  const out = join(dir, 'out.pt');
  assert.equal(convert(OLD_INPUT, out).code, 0);
  await killAt('replace:new-in-place', ['convert', NEW_INPUT, '--preset', 'cpu', '-o', out, '--force'], BACKGROUND);
  assert.equal(sha(out), NEW, 'the new output was published whole');
  const [link] = secondLinks(dir);
  assert.ok(link);
  assert.equal(sha(join(dir, link)), OLD, 'the old output, now under the hidden name only');
  assert.deepEqual(readdirSync(dir).sort(), [link, 'out.pt'].sort(), 'no temporary file: it became the output');

  // removed by `ckpt clean` at once, though it is young: nothing is writing it
  const clean = runCli(['clean', dir, '--json']);
  assert.equal(clean.code, 0, clean.stderr);
  assert.deepEqual(JSON.parse(clean.stdout).removed, [join(dir, link)]);
  assert.deepEqual(readdirSync(dir), ['out.pt']);
  assert.equal(sha(out), NEW);

  // removed by the next run into the folder, whatever it writes
  await killAt('replace:new-in-place', ['convert', OLD_INPUT, '--preset', 'cpu', '-o', out, '--force'], BACKGROUND);
  assert.equal(secondLinks(dir).length, 1);
  assert.equal(sha(out), OLD);
  const next = convert(NEW_INPUT, join(dir, 'other.pt'));
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(await noSecondLinks(dir), []);
  assert.deepEqual(readdirSync(dir).sort(), ['other.pt', 'out.pt']);
  assert.equal(sha(out), OLD, 'the output itself is never touched');
});

test('`ckpt clean` describes a left link as the replaced output', async () => {
  const dir = tmp();
  const out = join(dir, 'out.pt');
  assert.equal(convert(OLD_INPUT, out).code, 0);
  await killAt('replace:new-in-place', ['convert', NEW_INPUT, '--preset', 'cpu', '-o', out, '--force'], BACKGROUND);
  const dry = runCli(['clean', dir, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^would remove \.out\.pt\.ckpt-replaced-\S+ \([^)]*, the old out\.pt that a run by [^,]+, pid \d+ replaced\)$/m);
  assert.equal(secondLinks(dir).length, 1, '--dry-run removes nothing');
});

test('a batch with --force replaces an output that is not what it writes the same way; its next run removes a link left behind', async () => {
  const root = tmp();
  const input = join(root, 'in');
  const outDir = join(root, 'out');
  mkdirSync(input);
  copyFileSync(NEW_INPUT, join(input, 'model.pt'));
  const out = join(outDir, 'model.pt');
  assert.equal(convert(OLD_INPUT, out).code, 0);
  const batch = ['convert', input, '--preset', 'cpu', '-o', outDir, '--force', '--json'];
  await killAt('replace:new-in-place', batch, BACKGROUND);
  const fresh = reference(NEW_INPUT, 'model.pt');
  assert.equal(sha(out), fresh);
  const [link] = secondLinks(outDir);
  assert.ok(link, 'the batch took the same path');
  assert.equal(sha(join(outDir, link)), reference(OLD_INPUT, 'model.pt'));
  const r = runCli(batch, { env: BACKGROUND });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(sha(out), fresh);
  assert.deepEqual(await noSecondLinks(outDir), []);
});

test('re-shard to one file with --force takes the same path; its next run into the folder removes a link left behind', async () => {
  const dir = tmp();
  const out = join(dir, 'out.pt');
  const reshard = (input: string, to: string, ...more: string[]) => runCli(['reshard', input, '--to', 'single', '-o', to, ...more], { env: BACKGROUND });
  assert.equal(reshard(OLD_INPUT, out).code, 0);
  const old = sha(out);
  await killAt('replace:new-in-place', ['reshard', NEW_INPUT, '--to', 'single', '-o', out, '--force'], BACKGROUND);
  const [link] = secondLinks(dir);
  assert.ok(link, 'a second link to the replaced output');
  assert.equal(sha(join(dir, link)), old);
  assert.notEqual(sha(out), old, 'the new output is in place');
  const next = reshard(NEW_INPUT, join(dir, 'other.pt'));
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(await noSecondLinks(dir), []);
});

test('without the test bound, a small output is replaced by a plain rename: no second link at any time', async () => {
  const dir = tmp();
  const out = join(dir, 'out.pt');
  assert.equal(convert(OLD_INPUT, out).code, 0);
  const r = runCli(['convert', NEW_INPUT, '--preset', 'cpu', '-o', out, '--force'], { env: { CKPT_TEST_PAUSE_AT: 'replace:new-in-place' } });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /paused at/, 'the background path was not taken');
  assert.equal(sha(out), NEW);
  assert.deepEqual(readdirSync(dir), ['out.pt']);
});
