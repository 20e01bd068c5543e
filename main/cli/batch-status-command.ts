import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { batchStatus, type ShardStatus } from '../jobs/batch-status.ts';
import { fail } from '../errors.ts';
import { makeStyle } from './format-text.ts';
import type { CliIO } from './io.ts';

export const BATCH_STATUS_HELP = `ckpt batch-status <output folder> [--json]

Shows how far a folder conversion got, across every shard of a job array and every re-run,
from the journals each run keeps in <output folder>/.ckpt-batch/. A shard whose latest run
did not finish was killed or is still running: re-submit the same array to finish it.

exit codes: 0 every shard finished and every checkpoint is converted, 1 not (yet), 2 usage error`;

const time = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

function shardLine(s: ShardStatus): string {
  if (!s.latest) return `shard ${s.shard}: no run recorded yet`;
  const counts = `${s.done} of ${s.planned} done${s.failed.length ? `, ${s.failed.length} failed` : ''}`;
  const who = `${s.latest.host}, pid ${s.latest.pid}`;
  const state = s.latest.finishedAt
    ? `finished ${time(s.latest.finishedAt)} (${who})`
    : `started ${time(s.latest.startedAt)} (${who}), last record ${time(s.latest.lastRecordAt)}, not finished: still running, or killed (re-submit to finish)`;
  return `shard ${s.shard}: ${counts}; ${state}`;
}

export async function runBatchStatus(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    io.stdout(BATCH_STATUS_HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1) fail('usage', 'batch-status takes the output folder of a batch: ckpt batch-status OUT');
  const out = positionals[0]!;
  if (!fs.existsSync(out)) fail('io', `${out}: no such folder`, out);
  const st = batchStatus(out);
  if (values.json) {
    io.stdout(JSON.stringify(st) + '\n');
    return st.complete ? 0 : 1;
  }
  if (!st.shards.length) {
    io.stdout(`${out}: no batch journal here (a folder conversion records its progress in ${out}/.ckpt-batch/)\n`);
    return 1;
  }
  const s = makeStyle(io.color);
  const total = st.planned === null ? `${st.done} converted and verified so far` : `${st.done} of ${st.planned} converted and verified`;
  const head = `${out}: ${total}${st.failed ? `, ${st.failed} failed` : ''}${st.complete ? ', complete' : ''}`;
  io.stdout(`${(st.complete ? s.green : st.failed ? s.red : (x: string) => x)(head)}\n`);
  if (st.shards.length > 1 || st.shards[0]!.shard !== 'all' || !st.complete) for (const sh of st.shards) io.stdout(`  ${shardLine(sh)}\n`);
  const failed = st.shards.flatMap((sh) => sh.failed);
  if (failed.length) {
    io.stdout('failed:\n');
    for (const f of failed.slice(0, 20)) io.stdout(`  ${f.source}: ${f.reason}\n`);
    if (failed.length > 20) io.stdout(`  … and ${failed.length - 20} more (--json lists all)\n`);
  }
  return st.complete ? 0 : 1;
}
