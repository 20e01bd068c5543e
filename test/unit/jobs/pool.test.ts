// The worker pool with real convert jobs: a job that waits on the disk (fsync, read-back) frees
// its worker for more (at most four per worker while its heap is small, as with these small
// files), and every output still verifies. The
// main thread knows each temporary file a worker is writing, so an exit on a second Ctrl-C
// (which does not wait for the workers) still removes it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { liveTempFiles, removeLiveTempFiles } from '../../../main/io/atomic-file.ts';
import { CONVERT_WORKER, WorkerPool } from '../../../main/jobs/pool.ts';
import type { ConvertJobRequest, ConvertJobResults } from '../../../main/jobs/convert-job.ts';
import { bigSafetensors, CPU_RULES, DP } from '../service/helpers.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-pool-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('one worker overlaps jobs waiting on the disk with the next one, at most four at a time', async () => {
  const pool = new WorkerPool(1);
  try {
    const JOBS = 16;
    const events: { job: number; what: 'start' | 'end' }[] = [];
    const reports = await Promise.all(
      Array.from({ length: JOBS }, (_, job) =>
        pool
          .run(
            { kind: 'convert', source: DP, output: path.join(dir, `${job}.pt`), rules: CPU_RULES, force: false, syncFolder: false },
            { onStart: () => events.push({ job, what: 'start' }) },
          )
          .then((r) => {
            events.push({ job, what: 'end' });
            return r;
          }),
      ),
    );
    assert.ok(
      reports.every((r) => r.verified),
      'every output verified',
    );
    assert.equal(fs.readdirSync(dir).length, JOBS, 'one output per job, no temporary file left');
    let running = 0;
    let most = 0;
    for (const e of events) {
      running += e.what === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    assert.ok(most >= 2 && most <= 4, `jobs in flight at once on one worker: ${most} (events ${events.map((e) => `${e.what[0]}${e.job}`).join(' ')})`);
  } finally {
    await pool.close();
  }
});

test('a temporary file a worker is writing is known to the main thread, which can remove it; gone from the list when the job ends', async () => {
  const pool = new WorkerPool(1);
  const sub = fs.mkdtempSync(path.join(dir, 'temp-'));
  try {
    const src = bigSafetensors(path.join(sub, 'big.safetensors'));
    const out = path.join(sub, 'big.pt');
    const controller = new AbortController();
    let seen: string[] | null = null;
    const job = pool.run(
      { kind: 'convert', source: src, output: out, rules: CPU_RULES, force: false },
      {
        signal: controller.signal,
        onProgress: (p) => {
          if (seen || p.done === 0 || p.done >= p.total) return;
          seen = liveTempFiles();
          assert.equal(seen.length, 1, `one temporary file while writing: ${seen.join(', ')}`);
          assert.match(path.basename(seen[0]!), /^\.big\.pt\.ckpt-tmp-[A-Za-z0-9_.]+-\d+-[0-9a-z]+-[0-9a-f]{8}$/);
          assert.ok(fs.existsSync(seen[0]!), 'it exists');
          removeLiveTempFiles(); // what a second Ctrl-C does before exiting
          assert.ok(!fs.existsSync(seen[0]!), 'removed by the main thread');
          controller.abort();
        },
      },
    );
    await assert.rejects(job, /cancelled/);
    assert.ok(seen, 'progress was seen mid-write');
    assert.deepEqual(liveTempFiles(), [], 'the worker reported the file gone before the job ended');
    assert.deepEqual(fs.readdirSync(sub), ['big.safetensors'], 'no output, no temporary file');

    // a finished job leaves nothing in the list either
    await pool.run({ kind: 'convert', source: DP, output: path.join(sub, 'dp.pt'), rules: CPU_RULES, force: false });
    assert.deepEqual(liveTempFiles(), []);
  } finally {
    await pool.close();
  }
});

test('loaded() settles once every first thread has loaded its code (the CLI sets V8 flags only then)', async () => {
  const pool = new WorkerPool(2);
  try {
    let settled = false;
    const loaded = pool.loaded().then(() => (settled = true));
    assert.equal(settled, false, 'not before the threads have said so');
    await loaded;
    await pool.loaded(); // asked again afterwards: settled at once
    assert.equal((await pool.run({ kind: 'list-directory', dir })).dir, dir, 'the loaded threads answer jobs');
  } finally {
    await pool.close();
  }
});

test('the folder conversion worker (convert-worker.ts) converts and compares ranks, and refuses any other job with one line', async () => {
  const pool = new WorkerPool<ConvertJobRequest, ConvertJobResults>(1, CONVERT_WORKER);
  const sub = fs.mkdtempSync(path.join(dir, 'convert-worker-'));
  try {
    await pool.loaded();
    const outs = [path.join(sub, 'a.pt'), path.join(sub, 'b.pt')];
    for (const output of outs) {
      const report = await pool.run({ kind: 'convert', source: DP, output, rules: CPU_RULES, force: false, syncFolder: false });
      assert.ok(report.verified, 'its output verified');
      assert.ok(fs.existsSync(output), 'and published');
    }
    const same = await pool.run({ kind: 'compare-ranks', files: outs });
    assert.equal(same.identical, true, `two conversions of one file hold the same tensors: ${same.differing.join(', ')}`);
    assert.ok(same.tensors > 0);
    // a kind only the app's worker runs: the pool's types forbid it, so it is sent as the wire would carry it
    const other = { kind: 'list-directory', dir: sub } as unknown as ConvertJobRequest & { kind: 'convert' };
    await assert.rejects(pool.run(other), (e: Error) => {
      assert.match(e.message, /^internal error: the conversion worker runs convert and compare-ranks jobs \(without fit\), not list-directory$/);
      return true;
    });
    // the thread survives the refusal
    assert.equal((await pool.run({ kind: 'compare-ranks', files: outs })).identical, true);
  } finally {
    await pool.close();
  }
});
