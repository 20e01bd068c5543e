// Folder conversion: 20 checkpoints in nested folders (plus files that must be ignored and a
// truncated copy that must fail), resume, dry run, shards, and per-rank families; outputs loaded
// by real torch 1.13.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { TORCH_FIXTURES, checkWithTorch, jsonLines, removeTemps, runCliAsync, tempDir, torchSkipReason, type CliRun } from './helpers.ts';

const skip = torchSkipReason();
after(removeTemps);

/** relative path in the batch folder → fixture it copies, and where its SmallCNN state dict is. */
const LAYOUT: Record<string, { from: string; model?: (string | number)[] | 'whole' }> = {
  'a/cpu_state_dict.pt': { from: 'cpu_state_dict.pt', model: [] },
  'a/dp_state_dict.pt': { from: 'dp_state_dict.pt', model: [] },
  'a/b/compiled_prefix.pt': { from: 'compiled_prefix.pt', model: [] },
  'a/b/compiled_dp_prefix.pt': { from: 'compiled_dp_prefix.pt', model: [] },
  'a/b/c/cuda_mixed.pt': { from: 'cuda_mixed.pt', model: [] },
  'a/b/c/gpu3.pth.tar': { from: 'cuda3_single.pt', model: [] },
  'cuda3_single.pt': { from: 'cuda3_single.pt', model: [] },
  'legacy/legacy_state_dict.pt': { from: 'legacy_state_dict.pt', model: [] },
  'legacy/legacy_training_checkpoint.pt': { from: 'legacy_training_checkpoint.pt', model: ['model'] },
  'train/training_checkpoint.pt': { from: 'training_checkpoint.pt', model: ['model'] },
  'misc/dtypes.pt': { from: 'dtypes.pt' },
  'misc/views.pt': { from: 'views.pt' },
  'misc/nested_containers.pt': { from: 'nested_containers.pt' },
  'whole/whole_model.pt': { from: 'whole_model.pt', model: 'whole' },
  'whole/whole_model_dp.pt': { from: 'whole_model_dp.pt', model: 'whole' },
  'deep/x/y/z/weights.bin': { from: 'cpu_state_dict.pt', model: [] },
  'deep/x/model-dp.ckpt': { from: 'dp_state_dict.pt', model: [] },
  'family/rank0.pt': { from: 'ddp_gloo/rank0.pt', model: [] },
  'family/rank1.pt': { from: 'ddp_gloo/rank1.pt', model: [] },
};
const BROKEN = 'broken/truncated.pt';
const CHECKPOINTS = [...Object.keys(LAYOUT), BROKEN].sort();
let input = '';
let base = '';

before(() => {
  if (skip) return;
  base = tempDir('batch');
  input = join(base, 'in');
  for (const [rel, { from }] of Object.entries(LAYOUT)) {
    mkdirSync(dirname(join(input, rel)), { recursive: true });
    copyFileSync(join(TORCH_FIXTURES, from), join(input, rel));
  }
  mkdirSync(join(input, 'broken'));
  const whole = readFileSync(join(TORCH_FIXTURES, 'cpu_state_dict.pt'));
  writeFileSync(join(input, BROKEN), whole.subarray(0, Math.floor(whole.length / 2)));
  writeFileSync(join(input, 'a', 'notes.txt'), 'not a checkpoint\n');
  writeFileSync(join(input, 'a', 'b', 'config.json'), JSON.stringify({ lr: 0.1, note: 'not a checkpoint' }));
  assert.equal(CHECKPOINTS.length, 20);
});

/** Every file under dir, relative, except the batch journals in `.ckpt-batch/`. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      if (n === '.ckpt-batch' && d === dir) continue;
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

const itemsOf = (run: CliRun): Map<string, any> =>
  new Map(
    jsonLines(run.stdout)
      .filter((e) => e.event === 'item')
      .map((e) => [e.item.sources.join('+'), e.item]),
  );

let first: CliRun | undefined;
const outDir = (): string => join(base, 'out');

test('--jobs 2: converts every checkpoint, mirrors folders, ignores other files, fails the truncated one (exit 1)', {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  // the folder holds whole pickled models: carrying their classes needs the explicit trust flag (issue 11)
  first = await runCliAsync(['convert', input, '--preset', 'cpu', '--keep-objects', '-o', outDir(), '--jobs', '2', '--json']);
  assert.equal(first.code, 1, first.stderr);
  const events = jsonLines(first.stdout); // every line parses
  assert.deepEqual([...new Set(events.map((e) => e.event))].sort(), ['finished', 'item', 'plan', 'progress', 'start']);
  // each converted item was said to start before it was done, though a small file's worker sends no progress
  const started = new Set<number>();
  for (const e of events) {
    if (e.event === 'start') started.add(e.id);
    if (e.event === 'item' && e.item.status === 'done') assert.ok(started.has(e.item.id), `${e.item.sources}: 'start' came before its result`);
  }
  const plan = events.find((e) => e.event === 'plan');
  assert.equal(plan.ignored, 2, 'notes.txt and config.json ignored');
  assert.deepEqual(plan.items.flatMap((i: any) => i.sources).sort(), CHECKPOINTS, 'every checkpoint found, by content');
  assert.equal(plan.items.length, 19, 'the two rank files are one family item');
  const items = itemsOf(first);
  assert.equal(items.size, 19);
  const broken = items.get(BROKEN);
  assert.equal(broken.status, 'failed');
  assert.match(broken.reason, /truncated|central directory/);
  const fam = items.get('family/rank0.pt+family/rank1.pt');
  assert.equal(fam.status, 'done');
  // the real DDP ranks differ in BatchNorm running stats, so they are not merged
  assert.deepEqual(fam.outputs, ['family/rank0.pt', 'family/rank1.pt'], 'ranks that differ are converted one by one');
  assert.match(fam.reason, /ranks differ in 4 of 16 tensors \(module\.bn1\.running_mean/);
  for (const [k, it] of items) if (k !== BROKEN) assert.equal(it.status, 'done', `${k}: ${it.reason}`);
  assert.deepEqual(files(outDir()), Object.keys(LAYOUT).sort(), 'mirrored tree: no txt/json, no broken output, no temp files');
  assert.equal(readdirSync(join(outDir(), '.ckpt-batch')).length, 1, 'one journal for the run');
  const fin = events.find((e) => e.event === 'finished').summary;
  assert.deepEqual([fin.done, fin.failed, fin.skipped], [18, 1, 0]);

  // every output loads in torch 1.13 and matches its source
  const checks = Object.entries(LAYOUT).map(([rel, { model }]) => {
    const outRel = rel;
    return {
      id: outRel,
      kind: 'fixture',
      source: join(input, rel),
      preset: 'cpu',
      outputs: [{ file: join(outDir(), outRel), rank: null }],
      state_dicts: Array.isArray(model) ? [model] : [],
      model: model === 'whole' ? 'whole' : model ? 'state_dict' : null,
      model_path: Array.isArray(model) ? model : [],
    };
  });
  const res = checkWithTorch(checks);
  for (const c of checks) assert.deepEqual(res.get(c.id)!.errors, [], `${c.id}: ${res.get(c.id)!.errors.join('\n')}`);
});

test('rerun resumes: done files are skipped and it says so; the broken one fails again', { skip: skip ?? false }, async () => {
  assert.ok(first, 'the first batch ran');
  const mtimes = new Map(files(outDir()).map((f) => [f, statSync(join(outDir(), f)).mtimeMs]));
  // what a killed run leaves: a hidden temp file in a subfolder, untouched for two hours (stale),
  // and one written a moment ago, named after a dead pid: it may be a live writer on another node
  // or in another PID namespace, so it stays
  const deadPid = spawnSync('true').pid;
  const stale = join(outDir(), 'a', 'b', 'c', `.gpu3.pth.tar.ckpt-tmp-othernode-${deadPid}-${(Date.now() - 7_200_000).toString(36)}-0badf00d`);
  writeFileSync(stale, 'partial');
  const twoHoursAgo = new Date(Date.now() - 7_200_000);
  utimesSync(stale, twoHoursAgo, twoHoursAgo);
  const fresh = join(outDir(), 'a', 'b', 'c', `.gpu3.pth.tar.ckpt-tmp-othernode-${deadPid}-${Date.now().toString(36)}-0badcafe`);
  writeFileSync(fresh, 'being written');
  const again = await runCliAsync(['convert', input, '--preset', 'cpu', '--keep-objects', '-o', outDir(), '--jobs', '2', '--json']);
  assert.equal(again.code, 1, again.stderr);
  assert.ok(!existsSync(stale), 'the stale temp file in a subfolder is removed');
  assert.ok(existsSync(fresh), 'a fresh temp file of another process is left alone, whatever its pid');
  unlinkSync(fresh);
  const plan = jsonLines(again.stdout).find((e) => e.event === 'plan');
  const skipped = plan.items.filter((i: any) => i.status === 'skipped');
  assert.equal(skipped.length, 18);
  for (const s of skipped) assert.match(s.reason, /already converted and verified \(recorded in the batch journal\)/);
  const items = itemsOf(again);
  assert.deepEqual([...items.keys()], [BROKEN], 'only the broken file is attempted again');
  for (const f of files(outDir())) assert.equal(statSync(join(outDir(), f)).mtimeMs, mtimes.get(f), `${f} not rewritten`);
  const text = await runCliAsync(['convert', input, '--preset', 'cpu', '--keep-objects', '-o', outDir(), '--jobs', '2']);
  assert.equal(text.code, 1);
  assert.match(text.stdout, /19 checkpoints found, 1 to convert, 18 already done/);
});

test('--dry-run writes nothing', { skip: skip ?? false }, async () => {
  const out = join(base, 'dry');
  const run = await runCliAsync(['convert', input, '--preset', 'cpu', '-o', out, '--dry-run', '--json']);
  const [plan] = jsonLines(run.stdout);
  assert.equal(plan.event, 'plan');
  assert.equal(plan.items.length, 19);
  assert.equal(plan.plans.length, 19);
  assert.match(plan.plans.find((p: any) => p.item.sources[0] === BROKEN).error, /truncated|central directory/);
  assert.equal(run.code, 2, 'a file that cannot be planned makes the dry run exit 2');
  assert.ok(!existsSync(out) || files(out).length === 0, `nothing written: ${files(out)}`);
});

test('--dry-run --preset ddp previews each rank of a family with its own device, as the run converts it', { skip: skip ?? false }, async () => {
  const out = join(base, 'dry-ddp');
  const run = await runCliAsync(['convert', input, '--preset', 'ddp', '-o', out, '--dry-run', '--json']);
  const [plan] = jsonLines(run.stdout);
  const targetsOf = (source: string): string[] => {
    const row = plan.plans.find((p: any) => p.item.sources[0] === source);
    assert.ok(row?.plan, `${source} is previewed`);
    return [...new Set(row.plan.outputs.flatMap((o: any) => o.devices.map((d: any) => d.to)))] as string[];
  };
  assert.deepEqual(targetsOf('family/rank0.pt'), ['cuda:0']);
  assert.deepEqual(targetsOf('family/rank1.pt'), ['cuda:1']);
  assert.ok(!existsSync(out) || files(out).length === 0, `nothing written: ${files(out)}`);
});

test('--shard 1/2 + --shard 2/2 cover every file exactly once', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const runs = await Promise.all(
    [1, 2].map((i) =>
      runCliAsync(['convert', input, '--preset', 'cpu', '--keep-objects', '-o', join(base, `shard${i}`), '--shard', `${i}/2`, '--jobs', '1', '--json']),
    ),
  );
  const planned = runs.map(
    (r) =>
      jsonLines(r.stdout)
        .find((e) => e.event === 'plan')
        .items.flatMap((i: any) => i.sources) as string[],
  );
  const all = [...planned[0]!, ...planned[1]!].sort();
  assert.deepEqual(all, CHECKPOINTS, 'union is everything, no file twice');
  assert.ok(planned[0]!.length > 0 && planned[1]!.length > 0, `both shards have work (${planned[0]!.length}/${planned[1]!.length})`);
  const written = [1, 2].map((i) => files(join(base, `shard${i}`)));
  const together = [...written[0]!, ...written[1]!].sort();
  assert.equal(new Set(together).size, together.length, 'no output written by both shards');
  assert.deepEqual(together, files(outDir()), 'together the shards write what one batch writes');
  runs.forEach((r, i) => assert.equal(r.code, planned[i]!.includes(BROKEN) ? 1 : 0, r.stderr));
});

test('per-rank family: ddp keeps rank r on cuda:r, cpu merges identical ranks into one file', { skip: skip ?? false }, async () => {
  const fam = join(base, 'fam');
  mkdirSync(join(fam, 'run'), { recursive: true });
  // rank 0 of a real DDP run, copied as both ranks: identical tensors, as DDP keeps parameters
  for (const r of [0, 1]) copyFileSync(join(TORCH_FIXTURES, 'ddp_gloo', 'rank0.pt'), join(fam, 'run', `rank${r}.pt`));
  const ddpOut = join(base, 'fam-ddp');
  const cpuOut = join(base, 'fam-cpu');
  const ddp = await runCliAsync(['convert', fam, '--preset', 'ddp', '-o', ddpOut, '--json']);
  assert.equal(ddp.code, 0, ddp.stderr);
  assert.deepEqual(files(ddpOut), ['run/rank0.pt', 'run/rank1.pt']);
  const cpu = await runCliAsync(['convert', fam, '--preset', 'cpu', '-o', cpuOut, '--json']);
  assert.equal(cpu.code, 0, cpu.stderr);
  assert.deepEqual(files(cpuOut), ['run/merged.pt']);
  const res = checkWithTorch([
    { id: 'r0', kind: 'tags', file: join(ddpOut, 'run', 'rank0.pt'), expect: 'cuda:0', model: 'dp', same_as: join(fam, 'run', 'rank0.pt'), preset: 'ddp' },
    { id: 'r1', kind: 'tags', file: join(ddpOut, 'run', 'rank1.pt'), expect: 'cuda:1', model: 'dp', same_as: join(fam, 'run', 'rank1.pt'), preset: 'ddp' },
    // the merged file is rank 0: the ranks were checked to be copies
    { id: 'merged', kind: 'tags', file: join(cpuOut, 'run', 'merged.pt'), expect: 'cpu', model: 'plain', same_as: join(fam, 'run', 'rank0.pt'), preset: 'cpu' },
  ]);
  for (const id of ['r0', 'r1', 'merged']) {
    const r = res.get(id)!;
    assert.deepEqual(r.errors, [], `${id}: ${r.errors.join('\n')}`);
    assert.equal(r.info['tensors_compared'], 16);
  }
  assert.equal(res.get('merged')!.info['loaded_into'], 'SmallCNN');
  assert.equal(res.get('r1')!.info['loaded_into'], 'DataParallel');
});
