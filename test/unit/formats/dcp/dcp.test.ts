// torch.distributed.checkpoint folders: read (real 2-rank and 2x2-mesh runs of torch 2.13, against
// torch's own dcp_to_torch_save), written (round trips, and the same structure as torch's own
// torch_save_to_dcp), and damaged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { typeName } from '../../../../main/checkpoint/inspect.ts';
import { childrenOf } from '../../../../main/checkpoint/tree.ts';
import { readDcpFolder, readDcpMetadata, type DcpItem } from '../../../../main/formats/dcp/dcp.ts';
import { CheckpointError } from '../../../../main/errors.ts';
import { PyFloat, type PyValue } from '../../../../main/formats/values/python-values.ts';
import { TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import { fx, run, tensorsIn, tensorsOf, tmp, why } from '../../reshard/helpers.ts';

const DCP = fx('torch2/dcp');
const MESH = fx('reshard/mesh2d');

test('.metadata of a real 2-rank DCP save reads as torch describes it (items, chunks, storage ranges)', () => {
  const exp = JSON.parse(readFileSync(fx('torch2/dcp/metadata.expected.json'), 'utf8'));
  const md = readDcpMetadata(DCP);
  assert.equal(md.protocol, 4);
  assert.equal(md.version, exp.version);
  assert.deepEqual(md.files.sort(), ['__0_0.distcp', '__1_0.distcp']);
  assert.deepEqual(md.items.map((i) => i.fqn).sort(), Object.keys(exp.items).sort());
  const storage = new Map<string, { relative_path: string; file_offset: number; length: number }>(
    exp.storage.map((s: { fqn: string; offset: number[] | null }) => [`${s.fqn}@${s.offset ?? '-'}`, s]),
  );
  for (const item of md.items) {
    const e = exp.items[item.fqn];
    assert.equal(item.kind, e.type, item.fqn);
    const check = (s: { file: string; offset: number; length: number }, key: string): void => {
      const want = storage.get(key)!;
      assert.deepEqual([s.file, s.offset, s.length], [want.relative_path, want.file_offset, want.length], key);
    };
    if (item.kind === 'bytes') check(item.storage, `${item.fqn}@-`);
    else {
      assert.equal(item.dtype.name, e.dtype);
      assert.deepEqual(item.size, e.size);
      assert.deepEqual(
        item.chunks.map((c) => ({ offsets: c.offsets, sizes: c.sizes })),
        e.chunks,
      );
      for (const c of item.chunks) check(c.storage, `${item.fqn}@${c.offsets}`);
    }
  }
  assert.deepEqual(md.plannerData!.get('optim.param_groups.0.lr'), ['optim', 'param_groups', 0, 'lr']);
});

/** Dotted path → container type, and → plain leaf value, in the expected.json's terms. */
function skeleton(root: PyValue): { containers: Record<string, string>; scalars: Record<string, unknown> } {
  const containers: Record<string, string> = {};
  const scalars: Record<string, unknown> = {};
  const visit = (v: PyValue, p: string): void => {
    if (v instanceof TorchTensor) return;
    const kids = v !== null && typeof v === 'object' && !(v instanceof PyFloat) ? childrenOf(v) : [];
    if (kids.length || (v !== null && typeof v === 'object' && !(v instanceof PyFloat))) {
      containers[p] = typeName(v);
      for (const [k, x] of kids) visit(x, p ? `${p}.${k}` : String(k));
      return;
    }
    scalars[p] = v instanceof PyFloat ? v.value : v;
  };
  visit(root, '');
  return { containers, scalars };
}

test('a DCP folder reads as dcp_to_torch_save loads it: same tensors in the same order, same containers and values', () => {
  const exp = JSON.parse(readFileSync(fx('torch2/dcp/expected_single.expected.json'), 'utf8'));
  const r = readDcpFolder(DCP);
  try {
    const got = [...tensorsIn(r.root)];
    assert.deepEqual(
      got.map(([k]) => k),
      exp.tensors.map((t: { path: string[] }) => t.path.join('/')),
    );
    got.forEach(([k, t], i) => assert.deepEqual([t.dtype, t.shape, t.sha256], [exp.tensors[i].dtype, exp.tensors[i].shape, exp.tensors[i].sha256], k));
    const s = skeleton(r.root);
    assert.deepEqual(s.containers, exp.containers);
    assert.deepEqual(s.scalars, exp.scalars);
  } finally {
    r.close();
  }
});

test("DCP → single equals torch's dcp_to_torch_save output tensor for tensor (2-rank FSDP2 save, 2x2 mesh save)", async () => {
  const out = tmp();
  for (const [folder, single] of [
    [DCP, fx('torch2/dcp/expected_single.pt')],
    [join(MESH, 'dcp'), join(MESH, 'expected_single.pt')],
  ] as const) {
    const o = join(out, `${folder.split('/').at(-2)}.pt`);
    const r = await run([folder], { target: { kind: 'single' }, output: o });
    assert.ok(r.verified, why(r));
    assert.ok(r.pieceChecks > 0, 'assembled tensors are checked piece by piece');
    assert.deepEqual([...tensorsOf(o)], [...tensorsOf(single)]);
  }
});

function sameItems(a: DcpItem[], b: DcpItem[]): void {
  assert.deepEqual(
    a.map((i) => [i.fqn, i.kind]),
    b.map((i) => [i.fqn, i.kind]),
  );
  a.forEach((x, n) => {
    const y = b[n]!;
    if (x.kind === 'tensor' && y.kind === 'tensor') {
      assert.deepEqual([x.dtype.name, x.size, x.requiresGrad], [y.dtype.name, y.size, y.requiresGrad], x.fqn);
      assert.deepEqual(
        x.chunks.map((c) => [c.offsets, c.sizes]),
        y.chunks.map((c) => [c.offsets, c.sizes]),
        x.fqn,
      );
    }
  });
}

test('single → DCP is what torch_save_to_dcp writes for the same file: items, order, chunks, planner_data (committed torch 2.13 output)', async () => {
  const out = join(tmp(), 'dcp');
  const r = await run([fx('torch2/dcp/expected_single.pt')], { target: { kind: 'dcp', ranks: 1 }, output: out });
  assert.ok(r.verified, why(r));
  const ours = readDcpMetadata(out);
  const torch = readDcpMetadata(fx('reshard/torch_save_to_dcp'));
  sameItems(ours.items, torch.items);
  assert.deepEqual([...ours.plannerData!], [...torch.plannerData!]);
  assert.deepEqual(readdirSync(out).sort(), ['.metadata', '__0_0.distcp']);
  // and torch's own folder reads back as the file it came from
  assert.deepEqual([...tensorsOf(fx('reshard/torch_save_to_dcp'))], [...tensorsOf(fx('torch2/dcp/expected_single.pt'))]);
});

test('single → DCP → single is the identity (1 and 3 data files; torch 2.13 and 1.13 checkpoints)', async () => {
  for (const src of [fx('torch2/dcp/expected_single.pt'), fx('torch/training_checkpoint.pt'), fx('torch/dtypes.pt'), fx('torch/views.pt')]) {
    for (const ranks of [1, 3]) {
      const dir = tmp();
      const folder = join(dir, 'ckpt');
      const w = await run([src], { target: { kind: 'dcp', ranks }, output: folder });
      assert.ok(w.verified, `${src} → dcp:${ranks}: ${why(w)}`);
      assert.deepEqual(readdirSync(folder).filter((n) => n.endsWith('.distcp')).length, ranks);
      if (ranks === 3) {
        const md = readDcpMetadata(folder);
        assert.ok(
          md.items.some((i) => i.kind === 'tensor' && i.chunks.length === 3),
          'big enough tensors are split over the 3 ranks',
        );
      }
      const back = join(dir, 'back.pt');
      const r = await run([folder], { target: { kind: 'single' }, output: back });
      assert.ok(r.verified, why(r));
      assert.deepEqual([...tensorsOf(back)], [...tensorsOf(src)], `${src} via dcp:${ranks}`);
    }
  }
});

test('a DCP folder with a data file cut short fails with a typed error and leaves nothing behind', async () => {
  const dir = tmp();
  const folder = join(dir, 'dcp');
  cpSync(DCP, folder, { recursive: true });
  const f = join(folder, '__1_0.distcp');
  truncateSync(f, statSync(f).size - 5000);
  const out = join(dir, 'out.pt');
  await assert.rejects(run([folder], { target: { kind: 'single' }, output: out }), (e: unknown) => e instanceof CheckpointError && e.kind === 'truncated');
  assert.deepEqual(readdirSync(dir).sort(), ['dcp']);
  // and a missing data file is named
  cpSync(DCP, join(dir, 'dcp2'), { recursive: true });
  const { rmSync } = await import('node:fs');
  rmSync(join(dir, 'dcp2', '__0_0.distcp'));
  await assert.rejects(run([join(dir, 'dcp2')], { target: { kind: 'single' }, output: out }), /__0_0\.distcp: no such file/);
  assert.equal(existsSync(out), false);
});

test('a checkpoint whose pickle would run code is refused for a DCP folder (its bytes items load with weights_only=False) and a torch file', async () => {
  const dir = tmp();
  for (const target of [{ kind: 'dcp', ranks: 1 } as const, { kind: 'single' } as const]) {
    const r = await run([fx('torch/malicious.pt')], { target, output: join(dir, 'out') });
    assert.equal(r.written, false);
    assert.match(r.plan.errors.join(), /^the source is dangerous \(posix\.system\(.*\)\); nothing was written; re-shard to safetensors/);
  }
  assert.deepEqual(readdirSync(dir), []);
});

test('a whole pickled model re-shards to a torch file only with keepObjects, which lists every class kept', async () => {
  const dir = tmp();
  const model = fx('security/benign/whole_model.pt');
  const refused = await run([model], { target: { kind: 'single' }, output: join(dir, 'm.pt') });
  assert.match(refused.plan.errors.join(), /^the output would carry torch\.nn\.modules\.linear\.Linear, .*add --keep-objects/);
  assert.equal(existsSync(join(dir, 'm.pt')), false);
  const kept = await run([model], { target: { kind: 'single' }, output: join(dir, 'm.pt'), keepObjects: true });
  assert.ok(kept.verified, why(kept));
  assert.deepEqual(kept.plan.codeFree, { converted: [], kept: ['__main__.Model', 'torch.nn.modules.linear.Linear'] });
});
