// The Python runner's process boundary, with Debian's torch 1.13: the protocol's version check,
// samples sent in chunks that cross batch boundaries, a CUDA device this torch lacks, and a
// verification cancelled through the app's job API, which must end the runner process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiEvent } from '../../shared/api.ts';
import { NO_RULES } from '../../shared/presets.ts';
import { convertFile } from '../../main/convert/convert-file.ts';
import { CheckpointError } from '../../main/errors.ts';
import { createApiService } from '../../main/service/service.ts';
import { RUNNER_PROTOCOL, runnerScript } from '../../main/verify/python-runner.ts';
import { runVerify } from '../../main/verify/run-verify.ts';
import { EventLog } from '../unit/service/helpers.ts';
import { NPZ, tempDir } from '../unit/verify/helpers.ts';

const PY = '/usr/bin/python3';
const T2 = fileURLToPath(new URL('../fixtures/verify/torch2/', import.meta.url));
const MODELS = join(T2, 'models.py');
const EXPECTED = JSON.parse(readFileSync(join(T2, 'expected.json'), 'utf8')) as { models: Record<string, { predictions: number[] }> };
/** starting Python and importing torch dominate; on a loaded machine that takes seconds */
const BOUND_MS = 60_000;

/** The runner processes this process started (worker threads share its pid), by /proc. */
function runnerPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1];
      if (Number(ppid) === process.pid && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('verify-runner.py')) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

test('the runner checks the protocol version: the matching hello is answered, another is refused with one line and exit 2', () => {
  /** the runner's answers to one hello, progress lines left out */
  const ask = (protocol: number): { status: number | null; answers: Record<string, unknown>[] } => {
    const r = spawnSync(PY, ['-u', runnerScript()], { input: `${JSON.stringify({ op: 'hello', protocol })}\n`, encoding: 'utf8', timeout: BOUND_MS });
    const answers = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((m) => m['type'] !== 'progress');
    return { status: r.status, answers };
  };
  const ok = ask(RUNNER_PROTOCOL);
  assert.equal(ok.status, 0);
  assert.equal(ok.answers.length, 1);
  const hello = ok.answers[0] as { type: string; protocol: number; torch: string };
  assert.deepEqual([hello.type, hello.protocol], ['hello', RUNNER_PROTOCOL]);
  assert.match(hello.torch, /^1\.13/);
  const old = ask(1);
  assert.equal(old.status, 2);
  assert.deepEqual(old.answers, [{ type: 'error', kind: 'protocol', message: `the app speaks protocol 1, this runner ${RUNNER_PROTOCOL}`, details: '' }]);
});

test('a chunk of samples cut short, one whose size does not fit its shape, and a line that is not JSON: one protocol error each, exit 2', () => {
  /** the runner's answers after a hello to `rest`, written and then stdin closed */
  const feed = (rest: Buffer): { status: number | null; last: Record<string, unknown> } => {
    const hello = Buffer.from(`${JSON.stringify({ op: 'hello', protocol: RUNNER_PROTOCOL })}\n`);
    const r = spawnSync(PY, ['-u', runnerScript()], { input: Buffer.concat([hello, rest]), timeout: BOUND_MS });
    const lines = r.stdout.toString('utf8').trim().split('\n');
    return { status: r.status, last: JSON.parse(lines[lines.length - 1]!) as Record<string, unknown> };
  };
  const run = (shape: number[], bytes: number, sent: number): Buffer =>
    Buffer.concat([Buffer.from(`${JSON.stringify({ op: 'run', labels: [], shape, batch: 1, bytes })}\n`), Buffer.alloc(sent)]);
  const cut = feed(run([2, 1, 2, 2], 32, 20));
  assert.equal(cut.status, 2);
  assert.deepEqual(cut.last, { type: 'error', kind: 'protocol', message: 'stdin ended 12 bytes before the end of a chunk of samples', details: '' });
  const misfit = feed(run([2, 1, 2, 2], 12, 12));
  assert.equal(misfit.status, 2);
  assert.deepEqual(misfit.last, { type: 'error', kind: 'protocol', message: 'a chunk of shape [2, 1, 2, 2] is 32 bytes, the request says 12', details: '' });
  const junk = feed(Buffer.from('hello\n'));
  assert.equal(junk.status, 2);
  assert.deepEqual(junk.last, { type: 'error', kind: 'protocol', message: "not a JSON line: b'hello\\n'", details: '' });
});

test('the runner exits on the exit request while its stdin stays open (its reader thread blocked on it)', async () => {
  const child = spawn(PY, ['-u', runnerScript()], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  child.stdin.write(`${JSON.stringify({ op: 'hello', protocol: RUNNER_PROTOCOL })}\n`);
  const t = performance.now();
  while (!out.includes('"type": "hello"') && performance.now() - t < BOUND_MS) await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  child.stdin.write(`${JSON.stringify({ op: 'exit' })}\n`);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(timer);
  child.stdin.destroy();
  assert.equal(code, 0, 'exit 0, not killed');
  assert.ok(performance.now() - t0 < 5_000, `exited ${Math.round(performance.now() - t0)} ms after the exit request`);
});

test('a test set this side cannot read, found while the runner starts: its one line is the error, and the runner is stopped', async () => {
  const junk = join(tempDir(), 'junk.npz');
  writeFileSync(junk, 'not a zip');
  const err = await runVerify({
    model: '',
    data: junk,
    device: 'cpu',
    python: PY,
    modelClass: `${MODELS}:ResCNN`,
    checkpoint: join(T2, 'rescnn', 'dp.pt'),
  }).catch((e: unknown) => e);
  assert.ok(err instanceof CheckpointError, String(err));
  assert.match(err.message, /junk\.npz: not a zip archive/);
  const t = performance.now();
  while (runnerPids().length && performance.now() - t < 5_000) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(runnerPids(), [], 'no runner left behind');
});

test('chunks of samples that end inside a batch give the same logits as one chunk: PASS, bit for bit, torch predictions', async () => {
  const cpu = join(tempDir(), 'rescnn.cpu.pt');
  await convertFile(join(T2, 'rescnn', 'dp.pt'), { rules: { ...NO_RULES, preset: { name: 'cpu' } }, output: cpu, force: true, syncFolder: false });
  const opts = {
    model: '',
    data: NPZ,
    device: 'cpu',
    python: PY,
    modelClass: `${MODELS}:ResCNN`,
    checkpoint: cpu,
    against: join(T2, 'rescnn', 'dp.pt'),
    batchSize: 7,
  };
  const whole = await runVerify(opts);
  // 3 batches of 7 samples of 1x8x8 float32 per chunk: 18 chunks, the last one short, 52 batches
  const chunked = await runVerify(opts, { chunkBytes: 3 * 7 * 64 * 4 });
  for (const r of [whole, chunked]) {
    assert.equal(r.verdict, 'PASS', r.reasons.join('; '));
    assert.ok(r.comparison.bitIdentical);
    assert.deepEqual(r.runs[0]!.metrics.predictions, EXPECTED.models['rescnn']!.predictions);
  }
  assert.deepEqual(chunked.runs[1]!.metrics, whole.runs[1]!.metrics);
});

test('a forward that changes its input in place does not change what the other checkpoint sees', async () => {
  const dp = join(T2, 'rescnn', 'dp.pt');
  const r = await runVerify({
    model: '',
    data: NPZ,
    device: 'cpu',
    python: PY,
    modelClass: `${join(T2, 'faulty.py')}:ChangesItsInput`,
    checkpoint: dp,
    against: dp,
  });
  assert.equal(r.verdict, 'PASS', r.reasons.join('; '));
  assert.ok(r.comparison.bitIdentical);
  assert.deepEqual(r.runs[0]!.metrics.predictions, EXPECTED.models['rescnn']!.predictions);
});

test('--device cuda with a CPU-only torch is one line that says what to do, from the library and the CLI', async () => {
  for (const device of ['cuda', 'cuda:0', 'cuda:1']) {
    const t = performance.now();
    const err = await runVerify({ model: '', data: NPZ, device, python: PY, modelClass: `${MODELS}:ResCNN`, checkpoint: join(T2, 'rescnn', 'dp.pt') }).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof CheckpointError, String(err));
    assert.equal(err.kind, 'python');
    assert.match(
      err.message,
      new RegExp(
        `^--device ${device}: this torch \\(1\\.13[^)]*\\) has no CUDA device available; pass --device cpu, or --python an interpreter whose torch has CUDA$`,
      ),
    );
    assert.ok(performance.now() - t < BOUND_MS);
  }
  const ckpt = fileURLToPath(new URL('../../dist/ckpt.js', import.meta.url));
  const cli = spawnSync(
    process.execPath,
    [ckpt, 'verify', '--python', PY, '--model-class', `${MODELS}:ResCNN`, '--data', NPZ, join(T2, 'rescnn', 'dp.pt'), '--device', 'cuda:0'],
    { encoding: 'utf8', timeout: BOUND_MS },
  );
  assert.equal(cli.status, 2, cli.stderr);
  assert.deepEqual(cli.stderr.trim().split('\n'), [
    `ckpt: error: --device cuda:0: this torch (${/\((1\.13[^)]*)\)/.exec(cli.stderr)?.[1]}) has no CUDA device available; pass --device cpu, or --python an interpreter whose torch has CUDA`,
  ]);
});

test("cancelling a Python-model verification through the job API ends the runner's process in bounded time and reports cancelled", async () => {
  const service = createApiService({ shell: 'web', configDir: tempDir() });
  const log = new EventLog();
  const unsubscribe = service.onEvent(log.push);
  try {
    // SlowForward sleeps 0.25 s per batch: 45 batches of 8, about 23 s if nothing stops it
    const job = await service.startVerify({
      model: '',
      data: NPZ,
      device: 'cpu',
      python: PY,
      modelClass: `${join(T2, 'faulty.py')}:SlowForward`,
      checkpoint: join(T2, 'rescnn', 'dp.pt'),
      batchSize: 8,
    });
    await log.waitFor((e) => e.type === 'job-progress' && e.job === job && e.progress.done > 0, BOUND_MS);
    const pids = runnerPids();
    assert.equal(pids.length, 1, 'one runner while the batches run');
    const t = performance.now();
    await service.cancelJob(job);
    const end = await log.end(job, 10_000);
    const ms = performance.now() - t;
    assert.equal(end.type, 'job-error');
    const error = (end as Extract<ApiEvent, { type: 'job-error' }>).error;
    assert.equal(error.kind, 'cancelled', error.message);
    assert.match(error.message, /^verification cancelled/);
    assert.ok(ms < 5_000, `the job ended ${Math.round(ms)} ms after cancelJob`);
    assert.deepEqual(runnerPids(), [], 'the runner process is gone when the job ends');
    assert.equal((await service.jobStatus(job)).state, 'error');
  } finally {
    unsubscribe();
    await service.close();
  }
});
