// Faults while converting: a killed or interrupted converter, a full disk, a read-only
// destination, an existing destination, a source that changes during a batch. After each: no
// partial output, no temp file (or, after SIGKILL, only a harmless one), the source untouched.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CLI,
  IN_CI,
  TORCH_FIXTURES,
  checkWithTorch,
  jsonLines,
  oneErrorLine,
  removeTemps,
  reportOf,
  runCliAsync,
  runPython,
  sha256File,
  tempDir,
  torchSkipReason,
  type CliRun,
} from './helpers.ts';

const skip = torchSkipReason();
const IS_ROOT = process.getuid?.() === 0;
let work = '';
let big = '';
let five = '';

before(() => {
  if (skip) return;
  work = tempDir('faults');
  big = join(work, 'big.pt');
  five = join(work, 'five.pt');
  // ~320 MiB in 20 storages: long enough to be caught mid-copy, even on a fast disk
  const made = runPython<{ files: { file: string; bytes: number }[] }>('make_checkpoint.py', {
    files: [
      { file: big, mb: 320, parts: 20 },
      { file: five, mb: 5, parts: 5 },
    ],
  });
  console.log(`# made ${made.files.map((f) => `${relative(work, f.file)} ${(f.bytes / 2 ** 20).toFixed(1)} MiB`).join(', ')}`);
});
after(removeTemps);

/** Every temp file (`.<name>.ckpt-tmp-<host>-<pid>-<start>-<hex>`) under dir, recursively. */
function tempFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (n.includes('.ckpt-tmp-')) out.push(p);
      else if (statSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** Starts the CLI, waits until it is copying into its temp file (≥ minBytes), then sends `signal`. */
async function interruptWhileCopying(args: string[], outDir: string, signal: NodeJS.Signals, minBytes: number, maxWaitMs = 300) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, sig) => res({ code, signal: sig })));
  let done = false;
  void exited.then(() => (done = true));
  const t0 = Date.now();
  let seenAt = 0;
  let tempAtKill: { file: string; size: number } | null = null;
  while (!done && Date.now() - t0 < 60_000) {
    const t = tempFiles(outDir)[0];
    if (t) {
      let size = 0;
      try {
        size = statSync(t).size;
      } catch {
        /* renamed meanwhile */
      }
      seenAt ||= Date.now();
      if (size >= minBytes || Date.now() - seenAt >= maxWaitMs) {
        tempAtKill = { file: t, size };
        child.kill(signal);
        break;
      }
    }
    await sleep(2);
  }
  const result = await exited;
  return { ...result, stderr, tempAtKill, ms: Date.now() - t0 };
}

test('SIGKILL mid-write: no output, source unchanged; a rerun succeeds', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const dir = tempDir('kill');
  const out = join(dir, 'out.pt');
  const before = sha256File(big);
  const size = statSync(big).size;
  const r = await interruptWhileCopying(['convert', big, '--preset', 'cpu', '-o', out], dir, 'SIGKILL', size / 8);
  assert.ok(r.tempAtKill, `the converter was killed while its temp file existed (it ran ${r.ms} ms; exit ${r.code} ${r.signal}: ${r.stderr})`);
  assert.ok(r.tempAtKill.size < size, `killed mid-copy (${r.tempAtKill.size} of ${size} bytes written)`);
  console.log(`# SIGKILL after ${r.ms} ms with ${(r.tempAtKill.size / 2 ** 20).toFixed(0)} MiB in ${relative(dir, r.tempAtKill.file)}`);
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(!existsSync(out), 'no output after SIGKILL');
  assert.equal(sha256File(big), before, 'source unchanged');

  const rerun = await runCliAsync(['convert', big, '--preset', 'cpu', '-o', out, '--json']);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.equal(reportOf(rerun.stdout).verified, true);
  assert.ok(existsSync(out));
  // The killed run's temp file stays: nothing tells a dead writer from one on another node or in
  // another PID namespace but its age. `ckpt clean` keeps it while fresh and removes it once stale.
  assert.deepEqual(tempFiles(dir), [r.tempAtKill.file], "only the killed run's temp file is left");
  assert.match(
    relative(dir, r.tempAtKill.file),
    /^\.out\.pt\.ckpt-tmp-[A-Za-z0-9_.]+-\d+-[0-9a-z]+-[0-9a-f]{8}$/,
    'named with host, pid, start time and a random part',
  );
  const keep = await runCliAsync(['clean', dir]);
  assert.equal(keep.code, 0, keep.stderr);
  assert.match(keep.stdout, /kept \.out\.pt\.ckpt-tmp-.*not stale yet/);
  assert.deepEqual(tempFiles(dir), [r.tempAtKill.file], 'a fresh temp file is kept');
  const twoHoursAgo = new Date(Date.now() - 7_200_000);
  utimesSync(r.tempAtKill.file, twoHoursAgo, twoHoursAgo);
  const dry = await runCliAsync(['clean', dir, '--dry-run']);
  assert.match(dry.stdout, /would remove \.out\.pt\.ckpt-tmp-/);
  assert.deepEqual(tempFiles(dir), [r.tempAtKill.file], '--dry-run removes nothing');
  const clean = await runCliAsync(['clean', dir]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.match(clean.stdout, /^removed \.out\.pt\.ckpt-tmp-.* MiB, for out\.pt/m);
  assert.deepEqual(tempFiles(dir), [], 'the stale temp file is removed');
  assert.ok(existsSync(out), 'the output is untouched');
  assert.equal(sha256File(big), before, 'source still unchanged');
});

test('SIGINT mid-write: exit 130, no temp file, no output', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const dir = tempDir('sigint');
  const out = join(dir, 'out.pt');
  const before = sha256File(big);
  const r = await interruptWhileCopying(['convert', big, '--preset', 'cpu', '-o', out], dir, 'SIGINT', statSync(big).size / 8);
  assert.ok(r.tempAtKill, `interrupted while writing (exit ${r.code} ${r.signal})`);
  assert.equal(r.code, 130, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /cancelled/);
  assert.deepEqual(tempFiles(dir), [], 'temp file removed');
  assert.ok(!existsSync(out), 'no output');
  assert.equal(sha256File(big), before);
});

function assertCleanFailure(run: { code: number; stderr: string }, dir: string, out: string, message: RegExp): void {
  assert.equal(run.code, 2, `exit code (stderr: ${run.stderr})`);
  assert.match(oneErrorLine(run.stderr), message);
  assert.ok(!existsSync(out), 'no partial output');
  assert.deepEqual(tempFiles(dir), [], 'no temp file left');
}

/** Runs `fn` with a small tmpfs mounted at a fresh folder (root with CAP_SYS_ADMIN), or returns why it cannot. */
async function withTmpfs(opts: string, fn: (dir: string) => Promise<void>): Promise<string | null> {
  const dir = join(tempDir('mnt'), 'mnt');
  mkdirSync(dir);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) return `mount -t tmpfs failed (${(m.stderr || String(m.error)).trim()})`;
  try {
    await fn(dir);
  } finally {
    spawnSync('umount', [dir]);
  }
  return null;
}

test('full disk: exit 2, one line saying there is no space, nothing left behind', { skip: skip ?? false }, async (t) => {
  const why = IS_ROOT
    ? await withTmpfs('size=2m', async (dir) => {
        const out = join(dir, 'out.pt');
        const run = await runCliAsync(['convert', five, '--preset', 'cpu', '-o', out]);
        assertCleanFailure(run, dir, out, /^ckpt: error: .*no space left/i);
        console.log(`# 2 MiB tmpfs: ${run.stderr.trim()}`);
      })
    : 'not root: cannot mount a small tmpfs';
  if (why === null) return;
  if (!IN_CI) return t.skip(`${why}; the ulimit -f test below covers a write that the OS cuts off`);
  // CI without mount rights: the same guarantees under a real file-size limit (EFBIG)
  const dir = tempDir('efbig-ci');
  const out = join(dir, 'out.pt');
  const run = spawnSync('bash', ['-c', `ulimit -f 1024; exec "${process.execPath}" "${CLI}" convert "${five}" --preset cpu -o "${out}"`], { encoding: 'utf8' });
  assertCleanFailure({ code: run.status ?? -1, stderr: run.stderr }, dir, out, /^ckpt: error: .*(no space|too large|EFBIG)/i);
});

test('a file-size limit (ulimit -f 1 MiB, EFBIG): exit 2, one clear line, nothing left behind', { skip: skip ?? false }, () => {
  const dir = tempDir('efbig');
  const out = join(dir, 'out.pt');
  const run = spawnSync('bash', ['-c', `ulimit -f 1024; exec "${process.execPath}" "${CLI}" convert "${five}" --preset cpu -o "${out}"`], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  assert.equal(run.signal, null, 'not killed by SIGXFSZ');
  assertCleanFailure({ code: run.status ?? -1, stderr: run.stderr }, dir, out, /^ckpt: error: .*(no space|too large|EFBIG)/i);
  console.log(`# ulimit -f: ${run.stderr.trim()}`);
});

type Runner = (args: string[]) => Promise<CliRun>;

/**
 * Runs `fn` against each read-only destination this machine can make: a read-only bind mount
 * (root with CAP_SYS_ADMIN; root ignores file modes), and a chmod 555 folder written to by an
 * unprivileged user (this user when not root, `nobody` through setpriv when root). Returns the
 * mechanisms used and why the others could not be.
 */
async function withReadOnlyDirs(fn: (dir: string, run: Runner, how: string) => Promise<void>): Promise<{ used: string[]; missing: string[] }> {
  const used: string[] = [];
  const missing: string[] = [];
  const base = tempDir('ro');
  chmodSync(base, 0o755); // `nobody` must reach the folder
  if (IS_ROOT) {
    const src = join(base, 'src');
    const dir = join(base, 'mnt');
    mkdirSync(src);
    mkdirSync(dir);
    const b = spawnSync('mount', ['--bind', src, dir], { encoding: 'utf8' });
    if (b.status !== 0) missing.push(`read-only bind mount: ${b.stderr.trim()}`);
    else {
      try {
        const ro = spawnSync('mount', ['-o', 'remount,bind,ro', dir], { encoding: 'utf8' });
        if (ro.status !== 0) missing.push(`read-only remount: ${ro.stderr.trim()}`);
        else {
          await fn(dir, (args) => runCliAsync(args), 'read-only bind mount');
          used.push('read-only bind mount');
        }
      } finally {
        spawnSync('umount', [dir]);
      }
    }
  }
  const dir = join(base, 'mode555');
  mkdirSync(dir);
  chmodSync(dir, 0o555);
  try {
    if (!IS_ROOT) {
      await fn(dir, (args) => runCliAsync(args), 'chmod 555');
      used.push('chmod 555');
    } else if (spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']).status === 0) {
      const wrap = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
      await fn(dir, (args) => runCliAsync(args, { wrap }), 'chmod 555, run as nobody');
      used.push('chmod 555, run as nobody');
    } else {
      missing.push('chmod 555: root ignores it and setpriv cannot drop to nobody');
    }
  } finally {
    chmodSync(dir, 0o755);
  }
  return { used, missing };
}

test('read-only destination folder: exit 2, one clear line, nothing written', { skip: skip ?? false }, async (t) => {
  const src = join(TORCH_FIXTURES, 'cpu_state_dict.pt');
  const { used, missing } = await withReadOnlyDirs(async (dir, run, how) => {
    const out = join(dir, 'out.pt');
    const r = await run(['convert', src, '--preset', 'cpu', '-o', out]);
    assertCleanFailure(r, dir, out, /^ckpt: error: .*(read-only|permission denied)/i);
    console.log(`# ${how}: ${r.stderr.trim()}`);
  });
  if (missing.length) console.log(`# read-only mechanisms not available here: ${missing.join('; ')}`);
  if (used.length) return;
  if (IN_CI) assert.fail(`cannot make a read-only folder in CI: ${missing.join('; ')}`);
  t.skip(missing.join('; '));
});

test('read-only destination, output in a subfolder to be created: the line says read-only / permission denied', {
  skip: skip ?? false,
}, async () => {
  const lines: string[] = [];
  const { used } = await withReadOnlyDirs(async (dir, run, how) => {
    const out = join(dir, 'sub', 'out.pt');
    const r = await run(['convert', join(TORCH_FIXTURES, 'cpu_state_dict.pt'), '--preset', 'cpu', '-o', out]);
    assert.equal(r.code, 2);
    assert.ok(!existsSync(out));
    lines.push(`${how}: ${oneErrorLine(r.stderr)}`);
  });
  assert.ok(used.length, 'a read-only folder could be made');
  for (const l of lines) assert.match(l, /: ckpt: error: .*(read-only|permission denied)/i);
});

test('existing destination: refused without --force (file untouched), replaced with it', { skip: skip ?? false }, async () => {
  const dir = tempDir('exists');
  const out = join(dir, 'out.pt');
  const src = join(TORCH_FIXTURES, 'dp_state_dict.pt');
  const first = await runCliAsync(['convert', src, '--preset', 'cpu', '-o', out]);
  assert.equal(first.code, 0, first.stderr);
  const h = sha256File(out);
  const again = await runCliAsync(['convert', src, '--preset', 'gpu:1', '-o', out]);
  assert.equal(again.code, 2);
  assert.match(oneErrorLine(again.stderr), /already exists.*--force/);
  assert.equal(sha256File(out), h, 'untouched');
  assert.deepEqual(tempFiles(dir), []);
  const forced = await runCliAsync(['convert', src, '--preset', 'gpu:1', '-o', out, '--force', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(reportOf(forced.stdout).verified, true);
  assert.notEqual(sha256File(out), h, 'replaced');
  const res = checkWithTorch([{ id: 'forced', kind: 'tags', file: out, expect: 'cuda:1', model: 'plain' }]);
  assert.deepEqual(res.get('forced')!.errors, []);

  // ddp: one existing rank file stops the whole conversion before anything is written
  const rank1 = join(dir, 'm.rank1.pth');
  copyFileSync(out, rank1);
  const h1 = sha256File(rank1);
  const ddp = await runCliAsync(['convert', src, '--preset', 'ddp', '--world-size', '2', '-o', join(dir, 'm.pth')]);
  assert.equal(ddp.code, 2);
  assert.match(oneErrorLine(ddp.stderr), /m\.rank1\.pth already exists.*--force/);
  assert.ok(!existsSync(join(dir, 'm.rank0.pth')), 'rank 0 not written either');
  assert.equal(sha256File(rank1), h1);
});

test('a source that changes during a batch: that item fails with a reason, the others succeed, exit 1', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const base = tempDir('changed');
  const inDir = join(base, 'in');
  const outDir = join(base, 'out');
  mkdirSync(join(inDir, 'sub'), { recursive: true });
  copyFileSync(big, join(inDir, 'big.pt'));
  for (const f of ['cpu_state_dict.pt', 'dp_state_dict.pt', 'training_checkpoint.pt']) copyFileSync(join(TORCH_FIXTURES, f), join(inDir, 'sub', f));
  const child = spawn(process.execPath, [CLI, 'convert', inDir, '--preset', 'cpu', '-o', outDir, '--jobs', '2', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  let done = false;
  void exited.then(() => (done = true));
  let appended = false;
  const t0 = Date.now();
  while (!done && Date.now() - t0 < 60_000) {
    if (tempFiles(outDir).some((f) => f.includes('.big.pt.ckpt-tmp-'))) {
      appendFileSync(join(inDir, 'big.pt'), Buffer.alloc(4096, 1)); // the source grows while it is read
      appended = true;
      break;
    }
    await sleep(2);
  }
  const code = await exited;
  assert.ok(appended, 'the source was modified while its conversion was running');
  assert.equal(code, 1, stderr);
  const events = jsonLines(stdout);
  const items = new Map(events.filter((e) => e.event === 'item').map((e) => [e.item.sources[0], e.item]));
  const bigItem = items.get('big.pt');
  assert.equal(bigItem?.status, 'failed', JSON.stringify(bigItem));
  assert.match(bigItem.reason, /changed while it was being converted/);
  for (const f of ['sub/cpu_state_dict.pt', 'sub/dp_state_dict.pt', 'sub/training_checkpoint.pt']) {
    assert.equal(items.get(f)?.status, 'done', f);
    assert.ok(existsSync(join(outDir, f)));
  }
  assert.ok(!existsSync(join(outDir, 'big.pt')), 'no output for the changed source');
  assert.deepEqual(tempFiles(outDir), [], 'nothing partial left');
  const journal = readdirSync(join(outDir, '.ckpt-batch')).flatMap((n) => jsonLines(readFileSync(join(outDir, '.ckpt-batch', n), 'utf8')));
  assert.deepEqual(
    journal
      .filter((l) => l.type === 'done')
      .map((l) => l.source)
      .sort(),
    ['sub/cpu_state_dict.pt', 'sub/dp_state_dict.pt', 'sub/training_checkpoint.pt'],
  );
  assert.deepEqual(
    journal.filter((l) => l.type === 'failed').map((l) => l.source),
    ['big.pt'],
  );
  const fin = events.find((e) => e.event === 'finished');
  assert.deepEqual([fin.summary.done, fin.summary.failed], [3, 1]);
});
