// convert/plan.ts, table by table: output names for each preset, and the plan for the sample
// DataParallel checkpoint (digits-cnn/dp.pt, written by real torch) under each preset.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { outputFiles, planConversion } from '../../../main/convert/plan.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { NO_RULES, type ConversionRules, type Preset } from '../../../shared/presets.ts';
import { DP } from '../service/helpers.ts';

const rules = (preset: Preset | null, over: Partial<ConversionRules> = {}): ConversionRules => ({ ...NO_RULES, preset, ...over });

test('outputFiles: beside the source named by the preset, or -o; one file per rank for ddp:N', () => {
  const cases: { preset: Preset | null; output: string | null; want: { file: string; rank?: number }[] }[] = [
    { preset: null, output: null, want: [{ file: '/d/model.converted.pth' }] },
    { preset: { name: 'cpu' }, output: null, want: [{ file: '/d/model.cpu.pth' }] },
    { preset: { name: 'gpu', index: 2 }, output: null, want: [{ file: '/d/model.gpu2.pth' }] },
    { preset: { name: 'dp' }, output: null, want: [{ file: '/d/model.dp.pth' }] },
    { preset: { name: 'ddp', worldSize: 1 }, output: null, want: [{ file: '/d/model.ddp.pth', rank: 0 }] },
    {
      preset: { name: 'ddp', worldSize: 2 },
      output: null,
      want: [
        { file: '/d/model.ddp.rank0.pth', rank: 0 },
        { file: '/d/model.ddp.rank1.pth', rank: 1 },
      ],
    },
    { preset: { name: 'cpu' }, output: '/o/out.pt', want: [{ file: '/o/out.pt' }] },
    {
      preset: { name: 'ddp', worldSize: 2 },
      output: '/o/out',
      want: [
        { file: '/o/out.rank0.pth', rank: 0 },
        { file: '/o/out.rank1.pth', rank: 1 },
      ],
    },
  ];
  for (const c of cases) assert.deepEqual(outputFiles('/d/model.pth', c.output, rules(c.preset)), c.want, `${JSON.stringify(c.preset)} -o ${c.output}`);
});

const ck = openCheckpoint(DP);
after(() => ck.close());

test('planConversion of a DataParallel state dict: keys, layout after, outputs and errors per preset', () => {
  const cases: { name: string; rules: ConversionRules; output: string; layoutAfter: string; firstKey: string; keys: number; errors: RegExp | null }[] = [
    { name: 'cpu strips module.', rules: rules({ name: 'cpu' }), output: '/tmp/x.pt', layoutAfter: 'cpu', firstKey: 'conv1.weight', keys: 16, errors: null },
    { name: 'gpu:1', rules: rules({ name: 'gpu', index: 1 }), output: '/tmp/x.pt', layoutAfter: 'gpu:1', firstKey: 'conv1.weight', keys: 16, errors: null },
    {
      name: 'dp keeps one module.',
      rules: rules({ name: 'dp' }),
      output: '/tmp/x.pt',
      layoutAfter: 'dp',
      firstKey: 'module.conv1.weight',
      keys: 16,
      errors: null,
    },
    {
      name: 'exclude drops the head',
      rules: rules({ name: 'cpu' }, { exclude: '^fc\\.' }),
      output: '/tmp/x.pt',
      layoutAfter: 'cpu',
      firstKey: 'conv1.weight',
      keys: 14,
      errors: null,
    },
    {
      name: 'writing over the source is refused',
      rules: rules({ name: 'cpu' }),
      output: DP,
      layoutAfter: 'cpu',
      firstKey: 'conv1.weight',
      keys: 16,
      errors: /would replace the source/,
    },
    {
      name: 'two keys renamed to one is refused',
      rules: rules({ name: 'cpu' }, { renames: [{ pattern: '\\.(weight|bias)$', replacement: '.p' }] }),
      output: '/tmp/x.pt',
      layoutAfter: 'cpu',
      firstKey: 'conv1.p',
      keys: 16,
      errors: /keys 'module\.conv1\.weight' and 'module\.conv1\.bias' would both become 'conv1\.p'/,
    },
  ];
  for (const c of cases) {
    const plan = planConversion(ck, c.rules, c.output);
    assert.equal(plan.layoutAfter, c.layoutAfter, `${c.name}: layout after`);
    assert.equal(plan.layoutBefore.kind, 'dp', c.name);
    const kept = plan.stateDicts[0]!.keys.filter((k) => k.to !== null);
    assert.equal(kept[0]?.to, c.firstKey, `${c.name}: first key`);
    assert.equal(kept.length, c.keys, `${c.name}: kept keys`);
    assert.deepEqual(
      plan.outputs.map((o) => o.file),
      [c.output],
      `${c.name}: outputs`,
    );
    if (c.errors)
      assert.ok(
        plan.errors.some((e) => c.errors!.test(e)),
        `${c.name}: ${plan.errors.join('; ')}`,
      );
    else assert.deepEqual(plan.errors, [], c.name);
  }
});
