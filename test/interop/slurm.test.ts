// The README's Slurm job-array recipe under a real (single-node) Slurm: the array converts a
// tree, one task is killed mid-way (scancel --signal=KILL), the re-submitted array finishes with
// every file converted exactly once; then two shards run at once into one folder, one of them in
// its own PID namespace as a task on another node would be, and neither removes the other's
// temporary files. Skips with the reason where Slurm cannot start; never skips under CI=true.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, IN_CI, REPO, checkWithTorch, jsonLines, removeTemps, runCliAsync, runPython, tempDir, torchSkipReason } from './helpers.ts';
import { activeTasks, sbatch, startSlurm, taskResults, waitForJob, type SlurmCluster } from './slurm-cluster.ts';

const torchSkip = torchSkipReason();
let cluster: SlurmCluster | null = null;
let skip: string | null = torchSkip;
let base = '';
let input = '';
let sources: string[] = [];
const TASKS = 4;

before(async () => {
  if (skip) return;
  base = tempDir('slurm');
  chmodSync(base, 0o755); // the munge user reaches its socket below it
  const started = await startSlurm(join(base, 'slurm'));
  if (typeof started === 'string') {
    if (IN_CI) throw new Error(`the Slurm test must run in CI: ${started}`);
    skip = started;
    console.log(`# skip: ${started}`);
    return;
  }
  cluster = started;
  input = join(base, 'runs');
  // 24 checkpoints of 40 MiB in two folders: each file takes a task about 0.1 s, so the three or
  // more left when the test picks its victim outlast the scancel (with 16 MiB files a task once
  // finished before the kill landed)
  const files = Array.from({ length: 24 }, (_, i) => ({ file: join(input, `run${i % 2}`, `step${i}.pt`), mb: 40, parts: 4 }));
  for (const d of ['run0', 'run1']) mkdirSync(join(input, d), { recursive: true });
  runPython('make_checkpoint.py', { files });
  sources = files.map((f) => relative(input, f.file)).sort();
});

after(async () => {
  await cluster?.stop();
  removeTemps();
});

/** The sbatch script from the README, pointed at this test's folders. */
function readmeScript(out: string): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('**Spreading a batch over a cluster.**'));
  const script = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(script?.includes('#SBATCH --array='), 'the README has the job-array script');
  return script!.replaceAll('/shared/runs-cpu', out).replaceAll('/shared/runs', input);
}

/** A folder with `ckpt` on it (the built CLI), as an installed ckpt would be on the nodes. */
function binFolder(): string {
  const bin = join(base, 'bin');
  if (!existsSync(bin)) {
    mkdirSync(bin);
    writeFileSync(join(bin, 'ckpt'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(bin, 'ckpt'), 0o755);
  }
  return bin;
}

function journal(out: string): { file: string; lines: any[] }[] {
  const dir = join(out, '.ckpt-batch');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).map((n) => ({
    file: n,
    lines: readFileSync(join(dir, n), 'utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      }),
  }));
}

function outputsIn(dir: string): Map<string, number> {
  const found = new Map<string, number>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      if (n === '.ckpt-batch') continue;
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else found.set(relative(dir, p), statSync(p).mtimeMs);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

function submitArray(out: string): string {
  const work = join(base, 'job');
  mkdirSync(join(work, 'logs'), { recursive: true });
  writeFileSync(join(work, 'convert.sbatch'), readmeScript(out));
  // the recipe asks for 8 CPUs per task; this node has fewer, so the command line lowers it
  return sbatch(
    cluster!,
    [`--array=1-${TASKS}`, '--cpus-per-task=1', `--chdir=${work}`, `--output=${join(work, 'slurm-%A_%a.out')}`, join(work, 'convert.sbatch')],
    { PATH: `${binFolder()}:${process.env['PATH']}` },
  );
}

test('the README job array under real Slurm: a task killed mid-way, the array re-submitted, every file converted exactly once', {
  timeout: 300_000,
  skip: false,
}, async (t) => {
  if (skip) return t.skip(skip);
  const out = join(base, 'runs-cpu');
  const job = submitArray(out);
  // kill the first task that has published something and has at least three files to go
  let victim: number | null = null;
  const t0 = Date.now();
  while (victim === null && Date.now() - t0 < 120_000) {
    for (const j of journal(out)) {
      const m = /^shard-(\d+)-of-/.exec(j.file);
      const planned = j.lines.find((l) => l.type === 'start')?.planned ?? 0;
      const done = j.lines.filter((l) => l.type === 'done').length;
      if (m && done >= 1 && done <= planned - 3 && activeTasks(cluster!, job).some((a) => a.startsWith(`${job}_${m[1]} RUNNING`))) {
        victim = Number(m[1]);
        break;
      }
    }
    if (victim === null) await sleep(20);
  }
  assert.ok(victim !== null, 'a task was caught mid-way');
  // A plain `scancel --signal=KILL` makes Slurm cancel the job, which sends SIGTERM first (ckpt then
  // stops cleanly); --batch --full delivers SIGKILL to the batch script and everything under it.
  const cancel = spawn('scancel', ['--batch', '--full', '--signal=KILL', `${job}_${victim}`], { env: cluster!.env, stdio: 'ignore' });
  await new Promise((res) => cancel.on('close', res));
  await waitForJob(cluster!, job, 180_000);
  const first = taskResults(cluster!, job);
  console.log(`# first array ${job}: ${[...first].map(([k, v]) => `task ${k} ${v.state} ${v.exit}`).join(', ')}; task ${victim} killed`);
  const killedJournal = journal(out).find((j) => j.file.startsWith(`shard-${victim}-of-${TASKS}.`))!;
  assert.ok(!killedJournal.lines.some((l) => l.type === 'finished'), `task ${victim} was killed before it finished`);
  for (const [task, r] of first) assert.deepEqual([r.state, r.exit], task === victim ? ['FAILED', '0:9'] : ['COMPLETED', '0:0'], `task ${task}`);
  const status = await runCliAsync(['batch-status', out]);
  assert.equal(status.code, 1, status.stdout);
  assert.match(status.stdout, new RegExp(`shard ${victim}/${TASKS}: .*not finished: still running, or killed \\(re-submit to finish\\)`));
  const before = outputsIn(out);

  // the README: "rerun the same array after a failure or timeout to finish"
  const again = submitArray(out);
  await waitForJob(cluster!, again, 180_000);
  const second = taskResults(cluster!, again);
  for (const [task, r] of second)
    assert.deepEqual([r.state, r.exit], ['COMPLETED', '0:0'], `re-run task ${task}: ${readFileSync(join(base, 'job', `slurm-${again}_${task}.out`), 'utf8')}`);
  assert.equal(second.size, TASKS);

  // every file converted exactly once: one conversion record per source over both arrays (or, for
  // an output published in the instant before its record, none and one "verified and kept")
  const records = journal(out)
    .flatMap((j) => j.lines)
    .filter((l) => l.type === 'done');
  for (const s of sources) {
    const converted = records.filter((l) => l.source === s && !l.adopted).length;
    const kept = records.filter((l) => l.source === s && l.adopted).length;
    assert.ok(converted === 1 || (converted === 0 && kept === 1), `${s}: converted ${converted} times, kept ${kept} times`);
  }
  for (const [f, mtime] of before) if (!f.includes('.ckpt-tmp-')) assert.equal(outputsIn(out).get(f), mtime, `${f} was not written again`);
  const logs = readdirSync(join(base, 'job', 'logs')).map((n) => jsonLines(readFileSync(join(base, 'job', 'logs', n), 'utf8')));
  for (const l of logs) assert.equal(l.filter((e) => e.event === 'item' && e.item.status === 'failed').length, 0, 'no task of the re-run failed a file');
  assert.deepEqual([...outputsIn(out).keys()].filter((f) => !f.includes('.ckpt-tmp-')).sort(), sources, 'every output, nothing else');
  const complete = await runCliAsync(['batch-status', out]);
  assert.equal(complete.code, 0, complete.stdout);
  assert.match(complete.stdout, new RegExp(`: ${sources.length} of ${sources.length} converted and verified, complete`));
  const res = checkWithTorch(
    sources.slice(0, 3).map((f) => ({ id: f, kind: 'tags', file: join(out, f), expect: 'cpu', model: null, same_as: join(input, f), preset: 'cpu' })),
  );
  for (const [id, r] of res) assert.deepEqual(r.errors, [], `${id}: ${r.errors.join('\n')}`);
});

test("two shards at once into one folder, one in its own PID namespace: neither removes the other's temporary files", {
  timeout: 300_000,
  skip: false,
}, async (t) => {
  if (skip) return t.skip(skip);
  for (const order of [
    ['host', 'namespace'],
    ['namespace', 'host'],
  ] as const) {
    const out = join(base, `together-${order[0]}-first`);
    mkdirSync(join(out, 'run0'), { recursive: true });
    // a live temp file of a task on another node: a PID that means nothing here, written just now
    const foreign = join(out, 'run0', `.step0.pt.ckpt-tmp-othernode-${process.pid + 100000}-${Date.now().toString(36)}-0f0f0f0f`);
    writeFileSync(foreign, 'another node is writing this');
    const runs = new Map<string, Promise<{ code: number | null; stdout: string; stderr: string }>>();
    const start = (where: 'host' | 'namespace', shard: number): void => {
      const args = [CLI, 'convert', input, '--preset', 'cpu', '-o', out, '--shard', `${shard}/2`, '--jobs', '1', '--json'];
      const p = where === 'host' ? spawn(process.execPath, args) : spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, ...args]);
      let stdout = '';
      let stderr = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      runs.set(where, new Promise((res) => p.on('close', (code) => res({ code, stdout, stderr }))));
    };
    start(order[0], 1);
    // the second starts (and looks for leftovers) while the first is writing a temp file
    const t0 = Date.now();
    const tempsOfFirst = (): string[] => [...outputsIn(out).keys()].filter((f) => f.includes('.ckpt-tmp-') && !f.includes('othernode'));
    while (!tempsOfFirst().length && Date.now() - t0 < 60_000) await sleep(2);
    assert.ok(tempsOfFirst().length, 'the first shard was writing when the second started');
    start(order[1], 2);
    const results = await Promise.all([...runs.values()]);
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr);
      const failed = jsonLines(r.stdout).filter((e) => e.event === 'item' && e.item.status !== 'done');
      assert.deepEqual(failed, [], 'every file of both shards converted');
    }
    assert.ok(existsSync(foreign), "the other node's fresh temp file is left alone");
    assert.deepEqual(
      [...outputsIn(out).keys()].filter((f) => !f.includes('othernode')).sort(),
      sources,
      `${order[0]} first: every output once, no temp file left`,
    );
    const st = await runCliAsync(['batch-status', out]);
    assert.equal(st.code, 0, st.stdout);
    // once it is an hour old, any run (in any namespace) may remove it
    const old = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(foreign, old, old);
    const clean = await runCliAsync(['clean', out]);
    assert.match(clean.stdout, /^removed run0\/\.step0\.pt\.ckpt-tmp-othernode-/m);
    assert.ok(!existsSync(foreign));
  }
});
