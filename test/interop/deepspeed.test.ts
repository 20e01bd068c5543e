// DeepSpeed ZeRO checkpoints (../shared/corpus/deepspeed: real files from DeepSpeed 0.19.6's own
// save_checkpoint, stages 1-3, fp32 and bf16, 2 ranks) consolidate to exactly the state dict
// DeepSpeed's zero_to_fp32 gives (`reference.pth`): torch 1.13 loads each output, the keys come in
// the same order and every tensor is `torch.equal` with the same dtype and shape; tied aliases
// share storage. Through the CLI (`convert`, `reshard`) and through the app's service API. fp16 runs,
// which the corpus lacks, come from test/fixtures/deepspeed/make_fp16.py (torch 1.13, DeepSpeed's
// layout and global names).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiEvent } from '../../shared/api.ts';
import { createApiService } from '../../main/service/service.ts';
import { DEEPSPEED_DIR as DS, deepSpeedVariants, sharedSkipReason } from '../helpers/shared-dir.ts';
import { EventLog } from '../unit/service/helpers.ts';
import { FIXTURES, IN_CI, PY, PY2 as TORCH2, removeTemps, runCliAsync, tempDir, torchSkipReason } from './helpers.ts';

const skip = torchSkipReason() ?? sharedSkipReason(DS);
const VARIANTS = skip ? [] : deepSpeedVariants();
const CHECK = join(FIXTURES, 'deepspeed', 'check_consolidated.py');

interface Check {
  id: string;
  file: string;
  reference: string;
  safetensors?: boolean;
  aliases?: Record<string, string>;
  lightning?: boolean;
  lightning_keys?: string[];
}
interface CheckResult {
  id: string;
  errors: string[];
  /** groups of keys that are one tensor in the reference, checked to share storage in the output */
  shared: string[][];
}
function checkAll(py: string, checks: Check[]): Map<string, CheckResult> {
  const r = spawnSync(py, ['-I', '-B', CHECK], { input: JSON.stringify({ checks }), encoding: 'utf8', timeout: 240_000, cwd: tmpdir(), maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`check_consolidated.py exited ${r.status}: ${r.stderr.slice(-800)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: CheckResult[] };
  return new Map(out.results.map((x) => [x.id, x]));
}
function runChecks(py: string, checks: Check[]): Map<string, string[]> {
  return new Map([...checkAll(py, checks)].map(([id, x]) => [id, x.errors]));
}

const checks: Check[] = [];
let out = '';
after(removeTemps);

before(async () => {
  if (skip) return;
  out = tempDir('deepspeed');
  for (const v of VARIANTS) {
    const ck = join(DS, v, 'checkpoint');
    const reference = join(DS, v, 'reference.pth');
    const single = join(out, `${v}.reshard.pt`);
    const converted = join(out, `${v}.convert.pt`);
    const r1 = await runCliAsync(['reshard', ck, '--to', 'single', '-o', single]);
    assert.equal(r1.code, 0, `${v} reshard: ${r1.stderr}`);
    const r2 = await runCliAsync(['convert', ck, '--preset', 'cpu', '-o', converted]);
    assert.equal(r2.code, 0, `${v} convert: ${r2.stderr}`);
    checks.push({ id: `${v} reshard`, file: single, reference }, { id: `${v} convert`, file: converted, reference });
  }
});

test("every corpus variant consolidates through the CLI to zero_to_fp32's reference, as torch 1.13 loads it", { skip: skip ?? false }, () => {
  assert.equal(VARIANTS.length, 6);
  const results = checkAll(PY, checks);
  for (const c of checks) {
    assert.deepEqual(results.get(c.id)?.errors, [], c.id);
    // the tied weight is one tensor in zero_to_fp32's dict (stages 1 and 2 as well as 3): one storage in torch 1.13
    assert.deepEqual(results.get(c.id)?.shared, [['embed.weight', 'head.weight']], `${c.id}: the tie was checked`);
  }
});

test('fp16 runs (ZeRO 2 and 3, DynamicLossScaler) consolidate to the fp32 master weights make_fp16.py wrote, as torch 1.13 loads them', {
  skip: skip ?? false,
}, async () => {
  // test/fixtures/deepspeed/fp16: the module holds fp16 copies (some masters overflow fp16); reference.pth is what zero_to_fp32 returns
  const FP16 = join(FIXTURES, 'deepspeed', 'fp16');
  const got: Check[] = [];
  for (const v of ['stage2-ws2-fp16', 'stage3-ws2-fp16']) {
    const reference = join(FP16, v, 'reference.pth');
    const single = join(out, `${v}.reshard.pt`);
    const converted = join(out, `${v}.convert.pt`);
    const r1 = await runCliAsync(['reshard', join(FP16, v, 'checkpoint'), '--to', 'single', '-o', single]);
    assert.equal(r1.code, 0, `${v} reshard: ${r1.stderr}`);
    const r2 = await runCliAsync(['convert', join(FP16, v, 'checkpoint'), '--preset', 'cpu', '-o', converted]);
    assert.equal(r2.code, 0, `${v} convert: ${r2.stderr}`);
    got.push({ id: `${v} reshard`, file: single, reference }, { id: `${v} convert`, file: converted, reference });
  }
  const results = checkAll(PY, got);
  for (const c of got) {
    assert.deepEqual(results.get(c.id)?.errors, [], c.id);
    assert.deepEqual(results.get(c.id)?.shared, [['embed.weight', 'head.weight']], `${c.id}: the tie was checked`);
  }
});

test("inspect's consolidated size in each dtype is reference.pth's bytes cast with torch 1.13's .to()", { skip: skip ?? false }, async () => {
  const refs = VARIANTS.map((v) => join(DS, v, 'reference.pth'));
  const r = spawnSync(PY, ['-I', '-B', join(FIXTURES, 'deepspeed', 'dtype_sizes.py'), ...refs], { encoding: 'utf8', timeout: 240_000, cwd: tmpdir() });
  assert.equal(r.status, 0, r.stderr);
  const sizes = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, { fp32: number; bf16: number; fp16: number }>;
  for (const v of VARIANTS) {
    const i = await runCliAsync(['inspect', join(DS, v, 'checkpoint'), '--json', '--no-devices']);
    assert.equal(i.code, 0, i.stderr);
    const { records } = JSON.parse(i.stdout) as { records: Record<string, string> };
    const want = sizes[join(DS, v, 'reference.pth')]!;
    assert.deepEqual({ fp32: Number(records['size_as_fp32']), bf16: Number(records['size_as_bf16']), fp16: Number(records['size_as_fp16']) }, want, v);
  }
});

test('the tag folder itself, and --tag, name the same checkpoint', { skip: skip ?? false }, async () => {
  const v = join(DS, 'stage3-ws2-fp32', 'checkpoint');
  const a = join(out, 'tagdir.pt');
  const b = join(out, 'tagopt.pt');
  assert.equal((await runCliAsync(['reshard', join(v, 'global_step2'), '--to', 'single', '-o', a])).code, 0);
  const r = await runCliAsync(['reshard', v, '--tag', 'global_step2', '--to', 'single', '-o', b]);
  assert.equal(r.code, 0, r.stderr);
  const reference = join(DS, 'stage3-ws2-fp32', 'reference.pth');
  const results = runChecks(PY, [
    { id: 'tag folder', file: a, reference },
    { id: '--tag', file: b, reference },
  ]);
  assert.deepEqual([...results.values()], [[], []]);
});

const skip2 =
  skip ??
  (fs.existsSync(TORCH2) && spawnSync(TORCH2, ['-c', 'import safetensors'], { timeout: 60_000 }).status === 0
    ? false
    : 'the safetensors check needs .venv-torch2 with safetensors (test/fixtures/setup-torch2.sh)');
if (skip2 && IN_CI && !skip) throw new Error(String(skip2));

test('safetensors output keeps one copy of a tied weight, reports the alias, and equals the reference (torch 2.x + safetensors)', { skip: skip2 }, async () => {
  const got: Check[] = [];
  for (const v of ['stage2-ws2-bf16', 'stage3-ws2-fp32']) {
    const dir = join(out, `${v}-sf`);
    const r = await runCliAsync(['reshard', join(DS, v, 'checkpoint'), '--to', 'shards:1KB', '--format', 'safetensors', '-o', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { report } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { report: { plan: { aliases: { alias: string; kept: string }[] } } };
    assert.deepEqual(report.plan.aliases, [{ alias: 'head.weight', kept: 'embed.weight' }]);
    const merged = join(out, `${v}.safetensors`);
    const m = await runCliAsync(['reshard', dir, '--to', 'single', '--format', 'safetensors', '-o', merged]);
    assert.equal(m.code, 0, m.stderr);
    got.push({ id: v, file: merged, reference: join(DS, v, 'reference.pth'), safetensors: true, aliases: { 'head.weight': 'embed.weight' } });
  }
  const results = runChecks(TORCH2, got);
  for (const c of got) assert.deepEqual(results.get(c.id), [], c.id);
});

test('a Lightning *.ckpt/ DeepSpeed folder keeps its Lightning state, the weights under state_dict', { skip: skip ?? false }, async () => {
  // Lightning saves with tag "checkpoint" into the .ckpt folder (DeepSpeedStrategy.save_checkpoint)
  const ckpt = join(out, 'epoch=1-step=2.ckpt');
  fs.mkdirSync(join(ckpt, 'checkpoint'), { recursive: true });
  fs.writeFileSync(join(ckpt, 'latest'), 'checkpoint');
  const src = join(DS, 'stage2-ws2-fp32', 'checkpoint', 'global_step2');
  for (const f of fs.readdirSync(src)) fs.symlinkSync(join(src, f), join(ckpt, 'checkpoint', f));
  const file = join(out, 'lightning.pt');
  const r = await runCliAsync(['convert', ckpt, '--preset', 'cpu', '-o', file]);
  assert.equal(r.code, 0, r.stderr);
  const results = runChecks(PY, [
    {
      id: 'lightning',
      file,
      reference: join(DS, 'stage2-ws2-fp32', 'reference.pth'),
      lightning: true,
      lightning_keys: ['buffer_names', 'param_shapes', 'ds_config', 'ds_version', 'global_samples'],
    },
  ]);
  assert.deepEqual(results.get('lightning'), []);
});

test('the service API re-shards every variant to the reference too', { skip: skip ?? false }, async () => {
  const service = createApiService({ shell: 'web', configDir: tempDir('ds-config') });
  const log = new EventLog();
  const unsubscribe = service.onEvent(log.push);
  const got: Check[] = [];
  try {
    for (const v of VARIANTS) {
      const output = join(out, `${v}.service.pt`);
      const job = await service.startReshard({
        inputs: [join(DS, v, 'checkpoint')],
        target: { kind: 'single' },
        format: 'torch',
        output,
        force: false,
        preset: null,
        takeRank: null,
        dryRun: false,
      });
      const end = await log.end(job, 60_000);
      assert.equal(end.type, 'job-done', JSON.stringify(end));
      const done = end as Extract<ApiEvent, { type: 'job-done'; kind: 'reshard' }>;
      assert.equal(done.result.verified, true);
      assert.ok(done.result.pieceChecks > 0, 'the assembled params were checked piece by piece');
      assert.equal(done.result.plan.input.kind, 'deepspeed');
      got.push({ id: v, file: output, reference: join(DS, v, 'reference.pth') });
    }
    // --dtype through the service: castTo in the request, the counts in the result
    const job = await service.startReshard({
      inputs: [join(DS, 'stage3-ws2-fp32', 'checkpoint')],
      target: { kind: 'single' },
      format: 'torch',
      output: join(out, 'service-bf16.pt'),
      force: false,
      preset: null,
      takeRank: null,
      dryRun: false,
      castTo: 'bfloat16',
      keepDtype: '^norm\\.',
    });
    const end = await log.end(job, 60_000);
    assert.equal(end.type, 'job-done', JSON.stringify(end));
    const cast = (end as Extract<ApiEvent, { type: 'job-done'; kind: 'reshard' }>).result.cast;
    assert.deepEqual(cast, { dtype: 'bfloat16', cast: 9, kept: 5, unchanged: 0, overflow: 0, underflow: 0 });
    const report = await service.inspect(join(DS, 'stage3-ws2-bf16', 'checkpoint'));
    assert.equal(report.format, 'deepspeed');
    assert.equal(report.records['zero_stage'], '3');
  } finally {
    unsubscribe();
    await service.close();
  }
  const results = runChecks(PY, got);
  for (const c of got) assert.deepEqual(results.get(c.id), [], c.id);
});

test('a batch over a folder of runs converts each DeepSpeed checkpoint as one unit, and inspect --json names it', { skip: skip ?? false }, async () => {
  const dir = join(out, 'batch');
  const r = await runCliAsync(['convert', DS, '--preset', 'cpu', '-o', dir, '--jobs', '1']);
  assert.equal(r.code, 0, r.stderr);
  const got: Check[] = VARIANTS.map((v) => ({ id: v, file: join(dir, v, 'checkpoint.pt'), reference: join(DS, v, 'reference.pth') }));
  const results = runChecks(PY, got);
  for (const c of got) assert.deepEqual(results.get(c.id), [], c.id);
  const i = await runCliAsync(['inspect', join(DS, 'stage3-ws2-bf16', 'checkpoint'), '--json', '--no-devices']);
  assert.equal(i.code, 0, i.stderr);
  const rep = JSON.parse(i.stdout) as { format: string; records: Record<string, string> };
  assert.equal(rep.format, 'deepspeed');
  assert.deepEqual([rep.records['zero_stage'], rep.records['world_size'], rep.records['precision'], rep.records['tag']], ['3', '2', 'bf16', 'global_step2']);
  assert.equal(rep.records['frozen_params'], 'frozen.weight, frozen.bias');
  assert.equal(rep.records['optimizer_state'], 'present (not consolidated)');
});
