// `ckpt reshard` as a user runs it (the built CLI in a child process), `ckpt convert` on the new
// inputs, and what a cancelled or refused re-shard leaves behind: nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ReshardReport } from '../../../shared/reshard.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { reshard } from '../../../main/reshard/run-reshard.ts';
import { runCli } from '../../helpers/run-cli.ts';
import { fx, request, tensorsOf, tmp } from './helpers.ts';

const report = (stdout: string): ReshardReport => {
  const line = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; report?: ReshardReport })
    .find((e) => e.event === 'report');
  return line!.report!;
};

test('ckpt reshard DCP → single --json: exit 0, a verified report, progress events', () => {
  const out = join(tmp(), 'single.pt');
  const r = runCli(['reshard', fx('torch2/dcp'), '--to', 'single', '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = report(r.stdout);
  assert.equal(rep.verified, true);
  assert.equal(rep.plan.input.kind, 'dcp');
  assert.equal(rep.plan.input.columns.length, 3);
  assert.ok(rep.outputs[0]!.checks.every((c) => c.ok && /^[0-9a-f]{8}$/.test(c.crc32)));
  assert.ok(existsSync(out));
  // again without --force: refused, the file is kept
  const again = runCli(['reshard', fx('torch2/dcp'), '--to', 'single', '-o', out]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /^ckpt: error: .*already exists; pass --force/m);
  assert.doesNotMatch(again.stdout, /already exists/);
  assert.equal(runCli(['reshard', fx('torch2/dcp'), '--to', 'single', '-o', out, '--force']).code, 0);
});

test('ckpt reshard of ranks that differ: exit 1 naming the tensors; --take-rank writes one', () => {
  const out = join(tmp(), 'merged.pt');
  const r = runCli(['reshard', fx('torch/ddp_gloo/rank0.pt'), fx('torch/ddp_gloo/rank1.pt'), '--to', 'single', '-o', out]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /module\.bn1\.running_mean: values differ \(rank 1\)/);
  assert.match(r.stdout, /not merged/);
  assert.equal(existsSync(out), false);
  const t = runCli(['reshard', fx('torch/ddp_gloo'), '--to', 'single', '-o', out, '--take-rank', '0', '--preset', 'cpu']);
  assert.equal(t.code, 0, t.stdout + t.stderr);
  assert.match(t.stdout, /verified: 16 tensors/);
});

test('ckpt reshard --dry-run shows both layouts and writes nothing; -o *.safetensors picks the format', () => {
  const dir = tmp();
  const r = runCli(['reshard', fx('torch2/fsdp_sharded'), '--to', 'dcp:2', '-o', join(dir, 'dcp'), '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 rank files with DTensor\/ShardedTensor shards/);
  assert.match(r.stdout, /conv1\.weight +▌▌ +float32\[4, 1, 3, 3\] in 2 pieces/);
  assert.match(r.stdout, /DCP folder, 2 data files/);
  assert.deepEqual(readdirSync(dir), []);
  const sf = join(dir, 'm.safetensors');
  const w = runCli(['reshard', fx('torch/cpu_state_dict.pt'), '--to', 'single', '-o', sf, '--json']);
  assert.equal(w.code, 0, w.stderr);
  assert.equal(report(w.stdout).plan.request.format, 'safetensors');
  assert.deepEqual([...tensorsOf(sf)].sort(), [...tensorsOf(fx('torch/cpu_state_dict.pt'))].sort());
});

test('ckpt reshard usage errors exit 2 with one line', () => {
  const cases: [string[], RegExp][] = [
    [[fx('torch2/dcp'), '-o', '/tmp/x.pt'], /--to single\|ranks:N\|dcp\[:N\]\|shards\[:SIZE\]/],
    [[fx('torch2/dcp'), '--to', 'pieces', '-o', '/tmp/x.pt'], /--to pieces: use/],
    [[fx('torch2/dcp'), '--to', 'shards:lots', '-o', '/tmp/x'], /not a size/],
    [[fx('torch2/dcp'), '--to', 'dcp', '--format', 'safetensors', '-o', '/tmp/x'], /writes torch files/],
    [[fx('torch'), '--to', 'single', '-o', '/tmp/x.pt'], /neither a DCP folder/],
  ];
  for (const [args, re] of cases) {
    const r = runCli(['reshard', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, re);
  }
});

test('ckpt convert takes a DCP folder as one checkpoint (to cpu in one step), and an FSDP rank file as its family', () => {
  const dir = tmp();
  const out = join(dir, 'dcp.pt');
  const r = runCli(['convert', fx('torch2/dcp'), '--preset', 'cpu', '-o', out]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual([...tensorsOf(out)], [...tensorsOf(fx('torch2/dcp/expected_single.pt'))]);
  const dry = runCli(['convert', fx('torch2/fsdp_sharded/rank0.pt'), '--preset', 'dp', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /16 written/);
});

test('a cancelled re-shard leaves nothing: no output, no staging folder, no temporary file', async () => {
  for (const target of [{ kind: 'single' } as const, { kind: 'dcp', ranks: 2 } as const, { kind: 'ranks', count: 2 } as const]) {
    const dir = tmp();
    let events = 0;
    await assert.rejects(
      reshard(request([fx('torch2/dcp/expected_single.pt')], { target, output: join(dir, 'out.pt') }), {
        onProgress: () => void events++,
        cancelled: () => events > 0,
      }),
      (e: unknown) => e instanceof CheckpointError && e.kind === 'cancelled',
    );
    assert.deepEqual(readdirSync(dir), [], `${target.kind}: nothing left`);
  }
});

test('ckpt reshard --dry-run: every planned output names its size, never 0 B', () => {
  for (const [to, ext] of [
    ['single', '.pt'],
    ['ranks:2', ''],
    ['single', '.safetensors'],
  ] as const) {
    const out = join(tmp(), `planned${ext}`);
    const r = runCli([
      'reshard',
      fx('torch2/dcp'),
      '--to',
      to,
      '-o',
      out,
      '--dry-run',
      '--json',
      ...(ext === '.safetensors' ? ['--format', 'safetensors'] : []),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; plan?: ReshardReport['plan']; report?: ReshardReport })
      .find((e) => e.plan || e.report);
    const plan = line!.plan ?? line!.report!.plan;
    const data = plan.output.columns.filter((c) => c.role === 'data');
    assert.ok(data.length >= 1, to);
    // each output holds all of the tensor data: one file, or one copy per rank
    for (const c of data) assert.equal(c.bytes, plan.totalBytes / data.length, `${to}${ext} ${c.file}`);
    assert.ok(plan.totalBytes > 0);
    assert.equal(existsSync(out), false, 'a dry run writes nothing');
  }
});
