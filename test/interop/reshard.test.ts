// Re-shard outputs loaded by real torch. Torch files (single, rank files, .bin shards) with
// Debian's torch 1.13 (/usr/bin/python3, always present in CI). DCP folders and safetensors files
// with torch 2.x from .venv-torch2 when it exists (`test/fixtures/setup-torch2.sh`; safetensors
// needs the `safetensors` package in it too); without it those checks are skipped here, and CI
// relies on the unit tests' comparison with the committed torch 2.13 output
// (test/fixtures/reshard/torch_save_to_dcp, tied.safetensors, newest_zip.safetensors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReshardRequest } from '../../shared/reshard.ts';
import { reshard } from '../../main/reshard/run-reshard.ts';
import { REPO } from '../helpers/run-cli.ts';

const FIX = join(REPO, 'test', 'fixtures');
const CHECK = join(FIX, 'reshard', 'check_reshard.py');
const TORCH1 = '/usr/bin/python3';
const TORCH2 = join(REPO, '.venv-torch2', 'bin', 'python');
const IN_CI = process.env['CI'] === 'true';

function probe(py: string, modules: string): string | null {
  if (!existsSync(py)) return `${py} is missing`;
  const r = spawnSync(py, ['-I', '-B', '-c', `import ${modules}`], { encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? null : `${py} cannot import ${modules}`;
}
const skip1 = probe(TORCH1, 'torch');
if (skip1 && IN_CI) throw new Error(`the re-shard interop tests need Debian's torch in CI: ${skip1}`);
const skip2 = probe(TORCH2, 'torch');
const skipSf = skip2 ?? probe(TORCH2, 'safetensors');

interface Result {
  id: string;
  errors: string[];
}
function check(py: string, checks: ({ id: string; kind: string } & Record<string, unknown>)[]): Map<string, Result> {
  const r = spawnSync(py, ['-I', '-B', CHECK], { input: JSON.stringify({ checks }), encoding: 'utf8', timeout: 300_000, cwd: tmpdir(), maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`check_reshard.py exited ${r.status}: ${r.stderr.slice(-800)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: Result[] };
  return new Map(out.results.map((x) => [x.id, x]));
}

function assertAll(results: Map<string, Result>): void {
  for (const [id, r] of results) assert.deepEqual(r.errors, [], id);
}

const dir = mkdtempSync(join(tmpdir(), 'ckpt-interop-reshard-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function write(id: string, inputs: string[], over: Partial<ReshardRequest> & Pick<ReshardRequest, 'target'>): Promise<string> {
  const output = join(dir, id);
  const r = await reshard({ inputs, format: 'torch', force: false, preset: null, takeRank: null, dryRun: false, output, ...over });
  assert.ok(r.verified, `${id}: ${[...r.plan.errors, ...r.outputs.map((o) => o.mismatch ?? '')].join('; ')}`);
  return output;
}

test('torch 1.13 loads what re-sharding writes: DCP → single equals dcp_to_torch_save, consolidated FSDP, rank files, .bin shards', {
  skip: skip1 ?? false,
}, async () => {
  const fullOf = (p: string): Record<string, string> =>
    Object.fromEntries(
      (JSON.parse(spawnSync('cat', [p], { encoding: 'utf8' }).stdout) as { tensors: { key: string; sha256: string }[] }).tensors.map((t) => [t.key, t.sha256]),
    );
  const checks = [
    {
      id: 'dcp-single',
      kind: 'same',
      file: await write('dcp.pt', [join(FIX, 'torch2/dcp')], { target: { kind: 'single' } }),
      reference: join(FIX, 'torch2/dcp/expected_single.pt'),
    }, // its floats (lr, betas) are BINFLOAT, which 1.13's weights_only loader lacks; torch's own file has them too
    {
      id: 'mesh2d-single',
      kind: 'same',
      file: await write('mesh.pt', [join(FIX, 'reshard/mesh2d/dcp')], { target: { kind: 'single' } }),
      reference: join(FIX, 'reshard/mesh2d/expected_single.pt'),
      weights_only: true,
    },
    {
      id: 'fsdp2',
      kind: 'tensors',
      file: await write('fsdp2.pt', [join(FIX, 'torch2/fsdp_sharded')], { target: { kind: 'single' }, preset: { name: 'cpu' } }),
      expect: fullOf(join(FIX, 'torch2/fsdp_sharded/full.expected.json')),
      weights_only: true,
    },
    {
      id: 'fsdp1',
      kind: 'tensors',
      file: await write('fsdp1.pt', [join(FIX, 'torch2/fsdp_sharded/fsdp1_sharded_tensor')], { target: { kind: 'single' } }),
      expect: fullOf(join(FIX, 'torch2/fsdp_sharded/fsdp1_sharded_tensor/full.expected.json')),
      weights_only: true,
    },
    {
      id: 'mesh2d-ranks',
      kind: 'tensors',
      file: await write(
        'mesh-ranks.pt',
        [0, 1, 2, 3].map((r) => join(FIX, `reshard/mesh2d/rank${r}.pt`)),
        { target: { kind: 'single' } },
      ),
      expect: fullOf(join(FIX, 'reshard/mesh2d/full.expected.json')),
      weights_only: true,
    },
    {
      id: 'bin-shards',
      kind: 'shards',
      index: join(await write('bin', [join(FIX, 'torch/views.pt')], { target: { kind: 'shards', maxShardBytes: 200 } }), 'pytorch_model.bin.index.json'),
      reference: join(FIX, 'torch/views.pt'),
    },
  ];
  await write('split.pt', [join(FIX, 'torch/dp_state_dict.pt')], { target: { kind: 'ranks', count: 2 } });
  for (const r of [0, 1])
    checks.push({
      id: `rank${r}`,
      kind: 'same',
      file: join(dir, `split.rank${r}.pt`),
      reference: join(FIX, 'torch/dp_state_dict.pt'),
      weights_only: true,
    } as (typeof checks)[number]);
  assertAll(check(TORCH1, checks));
});

test('torch 2.x reads the DCP folders ckpt writes: dcp_to_torch_save and dcp.load give the source back', { skip: skip2 ?? false }, async () => {
  const single = join(FIX, 'torch2/dcp/expected_single.pt');
  const source = join(FIX, 'torch/training_checkpoint.pt');
  const training = await write('dt', [source], { target: { kind: 'dcp', ranks: 2 } });
  // The one planned difference from the source: its best_acc is a numpy.float64, which
  // torch.load(weights_only=True) refuses; the DCP folder holds the same value as a Python float,
  // and the report says so (main/reshard/code-free.ts)
  const planned = await reshard({
    inputs: [source],
    format: 'torch',
    force: false,
    preset: null,
    takeRank: null,
    dryRun: true,
    output: join(dir, 'dt-dry'),
    target: { kind: 'dcp', ranks: 2 },
  });
  assert.deepEqual(planned.plan.codeFree, { converted: ['numpy scalar → Python float'], kept: [] });
  const read = spawnSync(
    TORCH2,
    [
      '-c',
      `import sys, torch, tempfile, os
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
src = torch.load(sys.argv[1], weights_only=False)
out = os.path.join(tempfile.mkdtemp(), 'back.pt')
dcp_to_torch_save(sys.argv[2], out)
back = torch.load(out, weights_only=True)
print(type(src['best_acc']).__name__, type(back['best_acc']).__name__, float(src['best_acc']) == back['best_acc'])`,
      source,
      training,
    ],
    { encoding: 'utf8', cwd: tmpdir() },
  );
  assert.equal(read.stdout.trim(), 'float64 float True', read.stderr.slice(-800));
  assertAll(
    check(TORCH2, [
      { id: 'dcp1', kind: 'dcp', folder: await write('d1', [single], { target: { kind: 'dcp', ranks: 1 } }), reference: single },
      { id: 'dcp3', kind: 'dcp', folder: await write('d3', [single], { target: { kind: 'dcp', ranks: 3 } }), reference: single },
      // a 1.13 training checkpoint: a DCP keeps keys as str (optimizer state 0 → '0', as torch's
      // flatten_state_dict does), so torch's reading of the folder is compared with ckpt's reading of it
      { id: 'dcp-training', kind: 'dcp', folder: training, reference: await write('dt-back.pt', [training], { target: { kind: 'single' } }) },
    ]),
  );
});

test('the safetensors package reads what ckpt writes: single files and shard sets', { skip: skipSf ?? false }, async () => {
  const single = join(FIX, 'torch2/dcp/expected_single.pt');
  assertAll(
    check(TORCH2, [
      {
        id: 'sf-single',
        kind: 'safetensors',
        file: await write('m.safetensors', [single], { target: { kind: 'single' }, format: 'safetensors' }),
        reference: single,
      },
      {
        id: 'sf-tied',
        kind: 'safetensors',
        file: await write('t.safetensors', [join(FIX, 'torch2/newest_zip.pt')], { target: { kind: 'single' }, format: 'safetensors' }),
        reference: join(FIX, 'torch2/newest_zip.pt'),
      },
      {
        id: 'sf-shards',
        kind: 'shards',
        index: join(await write('sfs', [single], { target: { kind: 'shards', maxShardBytes: 3000 }, format: 'safetensors' }), 'model.safetensors.index.json'),
        reference: single,
      },
    ]),
  );
});
