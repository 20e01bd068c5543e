// Conversion outputs load with torch.load(f, weights_only=True) in torch 2.x too, wherever the
// source did, and hold the same tensors. torch 2.x is the venv test/fixtures/setup-torch2.sh
// makes from the local wheel folder; where it cannot exist the test says so and skips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { mapLimit, PY2, runCliAsync, tempDir, TORCH_FIXTURES } from './helpers.ts';

const skip = existsSync(PY2)
  ? null
  : `torch 2.x venv not found at ${PY2} (bash test/fixtures/setup-torch2.sh makes it from local wheels); the torch 1.13 interop tests still run`;
if (skip) console.log(`# skip: ${skip}`);

const SOURCES = [
  'cpu_state_dict.pt',
  'dp_state_dict.pt',
  'cuda_mixed.pt',
  'cuda3_single.pt',
  'compiled_dp_prefix.pt',
  'legacy_state_dict.pt',
  'dtypes.pt',
  'views.pt',
  'ddp_gloo/rank1.pt',
];
const PRESETS = [['cpu'], ['gpu:1'], ['dp'], ['ddp', '--world-size', '2']];

const CHECK = String.raw`
import json, sys, torch
spec = json.load(sys.stdin)
res = []
record = lambda s, loc: s
for c in spec:
    out = {'id': c['id']}
    try:
        src = torch.load(c['source'], weights_only=True, map_location='cpu')
    except Exception as e:
        out['source_weights_only'] = False
        res.append(out); continue
    out['source_weights_only'] = True
    try:
        tags = []
        got = torch.load(c['output'], weights_only=True, map_location=lambda s, loc: (tags.append(loc), s)[1])
        out['tags'] = sorted(set(tags))
        flat = lambda d: {k: v for k, v in d.items() if torch.is_tensor(v)}
        a, b = flat(src), flat(got)
        strip = lambda k: k[len('module.'):] if k.startswith('module.') else k
        a = {strip(strip(k.replace('_orig_mod.', '', 1))) if k.startswith('_orig_mod.') else strip(k): v for k, v in a.items()}
        b = {strip(k): v for k, v in b.items()}
        out['same_keys'] = sorted(a) == sorted(b)
        out['equal'] = out['same_keys'] and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k].view(torch.uint8) if a[k].dtype == torch.bool else a[k], b[k].view(torch.uint8) if b[k].dtype == torch.bool else b[k]) for k in a)
    except Exception as e:
        out['error'] = f'{type(e).__name__}: {e}'.splitlines()[0][:300]
    res.append(out)
print(json.dumps(res))
`;

test('outputs of every preset load with weights_only=True in torch 2.x and hold the source tensors', { skip: skip ?? false }, async () => {
  const dir = tempDir('ckpt-torch2-');
  const jobs = SOURCES.flatMap((s) => PRESETS.map((p) => ({ s, p })));
  const specs = await mapLimit(jobs, 2, async ({ s, p }, i) => {
    const out = join(dir, `${i}.pt`);
    const r = await runCliAsync(['convert', join(TORCH_FIXTURES, s), '--preset', ...p, '-o', out, '--json']);
    assert.equal(r.code, 0, `${s} ${p.join(' ')}: ${r.stderr}`);
    const output = p[0] === 'ddp' ? join(dir, `${i}.rank1.pt`) : out;
    const want = p[0] === 'cpu' ? 'cpu' : p[0] === 'gpu:1' ? 'cuda:1' : p[0] === 'dp' ? 'cuda:0' : 'cuda:1';
    return { id: `${s} → ${p.join(' ')}`, source: join(TORCH_FIXTURES, s), output, want };
  });
  const r = spawnSync(PY2, ['-I', '-B', '-c', CHECK], { input: JSON.stringify(specs), encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as { id: string; source_weights_only: boolean; tags?: string[]; equal?: boolean; error?: string }[];
  let checked = 0;
  for (const [i, res] of results.entries()) {
    if (!res.source_weights_only) continue;
    checked++;
    assert.equal(res.error, undefined, `${res.id}: ${res.error}`);
    assert.ok(res.equal, `${res.id}: tensors differ from the source`);
    assert.deepEqual(res.tags, [specs[i]!.want], `${res.id}: storage tags`);
  }
  assert.ok(checked >= 30, `only ${checked} outputs checked`);
});
