// A folder batch that is killed, re-run, or hits errors outside any one file: publishing is the
// record (the per-run journals in OUT/.ckpt-batch/), so a re-run after kill -9 finishes with each
// file converted exactly once; an existing output without a record is verified and kept; a file
// that vanishes during discovery, a full disk and an unwritable journal fail files, not the batch.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LIGHT_JOBS_PER_WORKER } from '../../main/jobs/pool.ts';
import { CLI, IN_CI, TORCH_FIXTURES, checkWithTorch, jsonLines, removeTemps, runCliAsync, runPython, tempDir, torchSkipReason } from './helpers.ts';

const skip = torchSkipReason();
const IS_ROOT = process.getuid?.() === 0;
after(removeTemps);

let input = '';
let sources: string[] = [];

before(() => {
  if (skip) return;
  input = join(tempDir('resume'), 'in');
  mkdirSync(join(input, 'sub'), { recursive: true });
  // ten 12 MiB checkpoints (long enough to be caught mid-batch) and two small real fixtures
  const files = Array.from({ length: 10 }, (_, i) => ({ file: join(input, i < 5 ? '' : 'sub', `part${i}.pt`), mb: 12, parts: 6 }));
  runPython('make_checkpoint.py', { files });
  copyFileSync(join(TORCH_FIXTURES, 'dp_state_dict.pt'), join(input, 'sub', 'dp.pt'));
  copyFileSync(join(TORCH_FIXTURES, 'training_checkpoint.pt'), join(input, 'train.pt'));
  sources = [...files.map((f) => relative(input, f.file)), 'sub/dp.pt', 'train.pt'].sort();
});

/** Every line of every journal under out. */
function journalLines(out: string): any[] {
  const dir = join(out, '.ckpt-batch');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) =>
    readFileSync(join(dir, n), 'utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return []; // a line cut off by the kill
        }
      }),
  );
}

/** Every file under dir that is not a journal, relative, with its modification time. */
function outputs(dir: string): Map<string, number> {
  const found = new Map<string, number>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (n === '.ckpt-batch') continue;
      if (statSync(p).isDirectory()) walk(p);
      else found.set(relative(dir, p), statSync(p).mtimeMs);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

const temps = (dir: string): string[] => [...outputs(dir).keys()].filter((f) => f.includes('.ckpt-tmp-'));

test('kill -9 mid-batch, then re-run: exit 0, every file converted exactly once, nothing rewritten', { skip: skip ?? false, timeout: 240_000 }, async () => {
  const out = join(tempDir('killed'), 'out');
  const child = spawn(process.execPath, [CLI, 'convert', input, '--preset', 'cpu', '-o', out, '--jobs', '1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on('close', (_c, sig) => res(sig)));
  child.stdout.resume();
  const t0 = Date.now();
  while (journalLines(out).filter((l) => l.type === 'done').length < 3 && Date.now() - t0 < 120_000) await sleep(5);
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  const recordedBefore = journalLines(out)
    .filter((l) => l.type === 'done')
    .map((l) => l.source);
  assert.ok(recordedBefore.length >= 3 && recordedBefore.length < sources.length, `killed mid-batch (${recordedBefore.length} of ${sources.length} recorded)`);
  assert.ok(!journalLines(out).some((l) => l.type === 'finished'), 'the killed run recorded no end');
  const before = outputs(out);
  const status = await runCliAsync(['batch-status', out]);
  assert.equal(status.code, 1, 'not complete');
  assert.match(status.stdout, new RegExp(`: ${recordedBefore.length} of ${sources.length} converted and verified`));
  assert.match(status.stdout, /not finished: still running, or killed \(re-submit to finish\)/);

  const again = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--jobs', '1', '--json']);
  assert.equal(again.code, 0, again.stderr);
  const events = jsonLines(again.stdout);
  const plan = events.find((e) => e.event === 'plan');
  const skipped = plan.items.filter((i: any) => i.status === 'skipped').map((i: any) => i.sources[0]);
  assert.deepEqual(skipped.sort(), [...recordedBefore].sort(), 'exactly the recorded files are skipped');
  const converted = events.filter((e) => e.event === 'item' && e.item.status === 'done').map((e) => e.item.sources[0]);
  // an output published in the instant before its record was written is verified and kept, not redone
  const kept = events.filter((e) => e.event === 'item' && e.item.status === 'skipped').map((e) => e.item.sources[0]);
  assert.deepEqual([...recordedBefore, ...converted, ...kept].sort(), sources, 'every file once: recorded, converted now, or verified and kept');
  for (const [f, mtime] of before) if (!f.includes('.ckpt-tmp-')) assert.equal(outputs(out).get(f), mtime, `${f} was not rewritten`);
  const done = journalLines(out)
    .filter((l) => l.type === 'done' && !l.adopted)
    .map((l) => l.source)
    .sort();
  assert.deepEqual(
    done,
    sources.filter((s) => !kept.includes(s)),
    'the journals record each conversion exactly once',
  );

  // the killed run's temp files are young: kept by every run, removed by an explicit clean (its one
  // worker had at most LIGHT_JOBS_PER_WORKER files in flight: one being written, the others waiting
  // on their fsync and read-back)
  const left = temps(out);
  assert.ok(left.length <= LIGHT_JOBS_PER_WORKER, `at most the killed run's ${LIGHT_JOBS_PER_WORKER} files in flight are left: ${left}`);
  if (left.length) {
    const clean = await runCliAsync(['clean', out, '--older-than', '0']);
    assert.equal(clean.code, 0, clean.stderr);
    assert.deepEqual(temps(out), []);
  }
  const complete = await runCliAsync(['batch-status', out]);
  assert.equal(complete.code, 0, complete.stdout);
  assert.match(complete.stdout, new RegExp(`: ${sources.length} of ${sources.length} converted and verified, complete`));
  const res = checkWithTorch(
    ['part0.pt', 'sub/part7.pt', 'sub/dp.pt'].map((f) => ({
      id: f,
      kind: 'tags',
      file: join(out, f),
      expect: 'cpu',
      model: null,
      same_as: join(input, f),
      preset: 'cpu',
    })),
  );
  for (const [id, r] of res) assert.deepEqual(r.errors, [], `${id}: ${r.errors.join('\n')}`);
});

test('outputs no journal records: verified against the source and kept; a corrupted one is refused, and replaced with --force', {
  skip: skip ?? false,
  timeout: 240_000,
}, async () => {
  const out = join(tempDir('adopt'), 'out');
  const first = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const written = outputs(out);
  rmSync(join(out, '.ckpt-batch'), { recursive: true }); // as after a crash, or written by an older version
  const again = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--json']);
  assert.equal(again.code, 0, again.stderr);
  const items = jsonLines(again.stdout)
    .filter((e) => e.event === 'item')
    .map((e) => e.item);
  assert.equal(items.length, sources.length);
  for (const i of items) {
    assert.equal(i.status, 'skipped', `${i.sources}: ${i.reason}`);
    assert.match(i.reason, /verified against the source and kept/);
  }
  assert.deepEqual(outputs(out), written, 'nothing rewritten');
  assert.equal(journalLines(out).filter((l) => l.type === 'done' && l.adopted).length, sources.length, 'now recorded');

  // one byte of tensor data changed on disk: same size, same central directory, wrong bytes
  const victim = join(out, 'part3.pt');
  const fd = openSync(victim, 'r+');
  const b = Buffer.alloc(1);
  const at = statSync(victim).size >> 1;
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
  rmSync(join(out, '.ckpt-batch'), { recursive: true });
  const refused = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--json']);
  assert.equal(refused.code, 1, refused.stderr);
  const bad = jsonLines(refused.stdout)
    .filter((e) => e.event === 'item' && e.item.status === 'failed')
    .map((e) => e.item);
  assert.deepEqual(
    bad.map((i) => i.sources[0]),
    ['part3.pt'],
  );
  assert.match(bad[0].reason, /part3\.pt already exists and is not what this conversion writes; pass --force to overwrite it/);
  const forced = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--force', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  const redone = jsonLines(forced.stdout)
    .filter((e) => e.event === 'item' && e.item.status === 'done')
    .map((e) => e.item.sources[0]);
  assert.deepEqual(redone, ['part3.pt'], 'only the corrupted output is written again');
  const res = checkWithTorch([{ id: 'p3', kind: 'tags', file: victim, expect: 'cpu', model: null, same_as: join(input, 'part3.pt'), preset: 'cpu' }]);
  assert.deepEqual(res.get('p3')!.errors, []);
});

test('a file that vanishes during discovery fails on its own; the batch goes on (exit 1)', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const base = tempDir('vanish');
  const inDir = join(base, 'in');
  mkdirSync(inDir);
  for (const f of ['cpu_state_dict.pt', 'dp_state_dict.pt', 'training_checkpoint.pt']) copyFileSync(join(TORCH_FIXTURES, f), join(inDir, f));
  const flag = join(base, 'discovered');
  const out = join(base, 'out');
  const child = spawn(process.execPath, [CLI, 'convert', inDir, '--preset', 'cpu', '-o', out, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CKPT_TEST_PAUSE_AFTER_DISCOVERY: flag },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  const t0 = Date.now();
  while (!existsSync(flag) && Date.now() - t0 < 30_000) await sleep(5);
  assert.ok(existsSync(flag), 'the batch paused after discovery');
  unlinkSync(join(inDir, 'dp_state_dict.pt')); // found, and now gone
  unlinkSync(flag);
  assert.equal(await exited, 1, stderr);
  const items = new Map(
    jsonLines(stdout)
      .filter((e) => e.event === 'item')
      .map((e) => [e.item.sources[0], e.item]),
  );
  assert.equal(items.get('dp_state_dict.pt').status, 'failed');
  assert.match(items.get('dp_state_dict.pt').reason, new RegExp(`^${join(inDir, 'dp_state_dict.pt')}: no such file$`));
  for (const f of ['cpu_state_dict.pt', 'training_checkpoint.pt']) assert.equal(items.get(f).status, 'done', f);
  assert.equal(stderr, '');
});

test('the journal cannot be written: one warning line naming it; every file still converted (exit 0)', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const base = tempDir('nojournal');
  const out = join(base, 'out');
  mkdirSync(out);
  writeFileSync(join(out, '.ckpt-batch'), 'in the way'); // a file where the journal folder goes
  const run = await runCliAsync(['convert', join(TORCH_FIXTURES, 'ddp_gloo'), '--preset', 'ddp', '-o', out]);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('note: ')); // the --world-size default note is not about the journal
  assert.equal(lines.length, 1, run.stderr);
  assert.match(
    lines[0]!,
    new RegExp(
      `^ckpt: warning: could not record progress in ${join(out, '.ckpt-batch')}/all\\.[^ ]+\\.jsonl \\(${join(out, '.ckpt-batch')} is a file, not a folder\\); a re-run verifies this run's outputs again`,
    ),
  );
  assert.ok(existsSync(join(out, 'rank0.pt')) && existsSync(join(out, 'rank1.pt')));
});

test('a full disk during a batch: files fail with the path and the reason, nothing partial or temporary is left', {
  skip: skip ?? false,
  timeout: 120_000,
}, async (t) => {
  if (!IS_ROOT) {
    if (IN_CI) assert.fail('CI runs as root and mounts a small tmpfs for this test');
    return t.skip('not root: cannot mount a small tmpfs');
  }
  const dir = join(tempDir('fullbatch'), 'mnt');
  mkdirSync(dir);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) {
    if (IN_CI) assert.fail(`mount -t tmpfs failed: ${m.stderr}`);
    return t.skip(`mount -t tmpfs failed (${m.stderr.trim()})`);
  }
  try {
    const out = join(dir, 'out');
    const run = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--jobs', '1', '--json']);
    assert.equal(run.code, 1, run.stderr);
    const items = jsonLines(run.stdout)
      .filter((e) => e.event === 'item')
      .map((e) => e.item);
    const failed = items.filter((i) => i.status === 'failed');
    const done = items.filter((i) => i.status === 'done');
    assert.ok(failed.length > 0 && done.length > 0, `some fit, some do not (${done.length} done, ${failed.length} failed)`);
    for (const i of failed) assert.match(i.reason, new RegExp(`^${out}/\\S+: no space left on the device$`), i.reason);
    assert.deepEqual(temps(out), [], 'no temporary file left');
    assert.deepEqual(
      [...outputs(dir).keys()].filter((f) => f.endsWith('.tmp')),
      [],
      'no .tmp file left',
    );
    const onDisk = [...outputs(out).keys()].sort();
    assert.deepEqual(onDisk, done.flatMap((i) => i.outputs).sort(), 'exactly the verified outputs exist');
    // stderr holds at most the journal warning, one line naming the journal
    for (const l of run.stderr.split('\n').filter(Boolean))
      assert.match(l, /^ckpt: warning: could not record progress in \S+\.jsonl \(no space left on the device\)/);
  } finally {
    spawnSync('umount', [dir]);
  }
});
