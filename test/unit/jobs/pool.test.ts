// The worker pool with real convert jobs: a job that waits on the disk (fsync, read-back) frees
// its worker for one more, never more than two per worker, and every output still verifies.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkerPool } from '../../../main/jobs/pool.ts';
import { CPU_RULES, DP } from '../api/helpers.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-pool-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('one worker overlaps a job waiting on the disk with the next one, at most two at a time', async () => {
  const pool = new WorkerPool(1);
  try {
    const JOBS = 16;
    const events: { job: number; what: 'start' | 'end' }[] = [];
    const reports = await Promise.all(Array.from({ length: JOBS }, (_, job) => {
      let started = false;
      return pool.run({ kind: 'convert', source: DP, output: path.join(dir, `${job}.pt`), rules: CPU_RULES, force: false, syncFolder: false }, {
        onProgress: () => {
          if (!started) events.push({ job, what: 'start' });
          started = true;
        },
      }).then((r) => {
        events.push({ job, what: 'end' });
        return r;
      });
    }));
    assert.ok(reports.every((r) => r.verified), 'every output verified');
    assert.equal(fs.readdirSync(dir).length, JOBS, 'one output per job, no temporary file left');
    let running = 0;
    let most = 0;
    for (const e of events) {
      running += e.what === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    assert.equal(most, 2, `jobs in flight at once on one worker: ${most} (events ${events.map((e) => `${e.what[0]}${e.job}`).join(' ')})`);
  } finally {
    await pool.close();
  }
});
