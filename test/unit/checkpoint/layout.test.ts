// Layout detection's pure parts, table by table: the wrapper prefixes every key shares, and the
// rank a file name gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commonPrefixes, rankFromName } from '../../../main/checkpoint/layout.ts';

test('commonPrefixes: stacked wrapper prefixes shared by every key, outermost first', () => {
  const cases: { name: string; keys: string[]; lightning?: boolean; want: string[] }[] = [
    { name: 'no keys', keys: [], want: [] },
    { name: 'plain keys', keys: ['conv.weight', 'fc.bias'], want: [] },
    { name: 'DataParallel / DDP', keys: ['module.conv.weight', 'module.fc.bias'], want: ['module.'] },
    { name: 'torch.compile of a DDP model', keys: ['_orig_mod.module.conv.weight', '_orig_mod.module.fc.bias'], want: ['_orig_mod.', 'module.'] },
    { name: 'DDP of a compiled model', keys: ['module._orig_mod.w'], want: ['module.', '_orig_mod.'] },
    { name: 'one key without the prefix: none', keys: ['module.a', 'b'], want: [] },
    { name: 'a key that is only the prefix does not count as wrapped', keys: ['module.', 'module.a'], want: [] },
    { name: "model. outside Lightning is the model's own name (HF, YOLO)", keys: ['model.layers.0.w', 'model.norm.w'], want: [] },
    { name: 'model. in a Lightning checkpoint is the LightningModule wrapper', keys: ['model.layers.0.w', 'model.norm.w'], lightning: true, want: ['model.'] },
    { name: 'Lightning around a compiled model', keys: ['model._orig_mod.w'], lightning: true, want: ['model.', '_orig_mod.'] },
  ];
  for (const c of cases) assert.deepEqual(commonPrefixes(c.keys, c.lightning ?? false), c.want, c.name);
});

test('rankFromName: the rank a per-rank file name carries', () => {
  const cases: [string, number | null][] = [
    ['model.pt', null],
    ['ckpt.rank3.pt', 3],
    ['model_rank_3.pth', 3],
    ['rank-12.bin', 12],
    ['weights_3.pt', 3],
    ['shard_0.ckpt', 0],
    ['frank1.pt', null],
    ['weights_3.safetensors', null],
    ['epoch_10_step.pt', null],
  ];
  for (const [name, want] of cases) assert.equal(rankFromName(name), want, name);
});
