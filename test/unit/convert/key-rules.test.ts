// The key and device rules of a conversion, table by table: what each rule does to a key, a
// `_metadata` module path and a device tag. Prefixes move only at the start of keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addedModulePaths, deviceMapper, keyMapper } from '../../../main/convert/key-rules.ts';
import { NO_RULES, type ConversionRules } from '../../../shared/presets.ts';

const rules = (over: Partial<ConversionRules>): ConversionRules => ({ ...NO_RULES, ...over });
const DP_KEYS = ['module.conv.weight', 'module.fc.bias'];
const COMPILED_DP_KEYS = ['_orig_mod.module.conv.weight', '_orig_mod.module.fc.bias'];

test('keyMapper: each rule on a key', () => {
  const cases: {
    name: string;
    keys: string[];
    rules: ConversionRules;
    lightning?: boolean;
    key: string;
    want: string | null;
    stripped?: string[];
    added?: string[];
  }[] = [
    { name: 'no rules keep the key', keys: DP_KEYS, rules: NO_RULES, key: 'module.conv.weight', want: 'module.conv.weight', stripped: [], added: [] },
    {
      name: 'cpu strips the DataParallel wrapper',
      keys: DP_KEYS,
      rules: rules({ preset: { name: 'cpu' } }),
      key: 'module.conv.weight',
      want: 'conv.weight',
      stripped: ['module.'],
      added: [],
    },
    {
      name: 'cpu strips stacked wrappers outermost first',
      keys: COMPILED_DP_KEYS,
      rules: rules({ preset: { name: 'cpu' } }),
      key: '_orig_mod.module.fc.bias',
      want: 'fc.bias',
      stripped: ['_orig_mod.', 'module.'],
    },
    {
      name: "a prefix not on every key is the model's own and stays",
      keys: ['module.a', 'b'],
      rules: rules({ preset: { name: 'cpu' } }),
      key: 'module.a',
      want: 'module.a',
      stripped: [],
    },
    {
      name: 'a submodule called module inside the name is never touched',
      keys: ['module.enc.module.w'],
      rules: rules({ preset: { name: 'cpu' } }),
      key: 'module.enc.module.w',
      want: 'enc.module.w',
    },
    {
      name: 'dp adds exactly one module. after stripping',
      keys: DP_KEYS,
      rules: rules({ preset: { name: 'dp' } }),
      key: 'module.fc.bias',
      want: 'module.fc.bias',
      stripped: ['module.'],
      added: ['module.'],
    },
    {
      name: 'ddp on plain keys adds module.',
      keys: ['conv.weight'],
      rules: rules({ preset: { name: 'ddp', worldSize: 4 } }),
      key: 'conv.weight',
      want: 'module.conv.weight',
      added: ['module.'],
    },
    {
      name: 'model. is a wrapper only in Lightning checkpoints',
      keys: ['model.w'],
      rules: rules({ preset: { name: 'cpu' } }),
      key: 'model.w',
      want: 'model.w',
    },
    {
      name: 'model. in a Lightning checkpoint is stripped',
      keys: ['model.w'],
      rules: rules({ preset: { name: 'cpu' } }),
      lightning: true,
      key: 'model.w',
      want: 'w',
      stripped: ['model.'],
    },
    {
      name: '--strip-prefix removes a prefix at the start',
      keys: ['backbone.w'],
      rules: rules({ stripPrefixes: ['backbone.'] }),
      key: 'backbone.w',
      want: 'w',
    },
    {
      name: '--strip-prefix leaves keys without it',
      keys: ['backbone.w', 'head.w'],
      rules: rules({ stripPrefixes: ['backbone.'] }),
      key: 'head.w',
      want: 'head.w',
    },
    {
      name: "--add-prefix goes on after stripping, inside dp's module.",
      keys: DP_KEYS,
      rules: rules({ preset: { name: 'dp' }, addPrefix: 'net.' }),
      key: 'module.conv.weight',
      want: 'module.net.conv.weight',
      added: ['module.', 'net.'],
    },
    {
      name: 'renames are regexes with $1, applied after stripping',
      keys: DP_KEYS,
      rules: rules({ preset: { name: 'cpu' }, renames: [{ pattern: '^conv\\.(\\w+)$', replacement: 'stem.$1' }] }),
      key: 'module.conv.weight',
      want: 'stem.weight',
    },
    {
      name: 'include keeps only matching keys (matched after renaming)',
      keys: DP_KEYS,
      rules: rules({ preset: { name: 'cpu' }, include: '^conv\\.' }),
      key: 'module.fc.bias',
      want: null,
    },
    { name: 'exclude drops matching keys', keys: DP_KEYS, rules: rules({ preset: { name: 'cpu' }, exclude: '^fc\\.' }), key: 'module.fc.bias', want: null },
    {
      name: 'exclude keeps the others',
      keys: DP_KEYS,
      rules: rules({ preset: { name: 'cpu' }, exclude: '^fc\\.' }),
      key: 'module.conv.weight',
      want: 'conv.weight',
    },
  ];
  for (const c of cases) {
    const m = keyMapper(c.keys, c.rules, c.lightning ?? false);
    assert.equal(m.map(c.key), c.want, c.name);
    if (c.stripped) assert.deepEqual(m.stripped, c.stripped, `${c.name}: stripped`);
    if (c.added) assert.deepEqual(m.added, c.added, `${c.name}: added`);
  }
});

test("keyMapper.mapModulePath: _metadata paths follow their keys; the wrappers' own entries vanish", () => {
  const cases: { name: string; keys: string[]; rules: ConversionRules; path: string; want: string | null }[] = [
    { name: 'the DataParallel wrapper itself (root) is dropped', keys: DP_KEYS, rules: rules({ preset: { name: 'cpu' } }), path: '', want: null },
    { name: 'module becomes the root', keys: DP_KEYS, rules: rules({ preset: { name: 'cpu' } }), path: 'module', want: '' },
    { name: 'module.conv becomes conv', keys: DP_KEYS, rules: rules({ preset: { name: 'cpu' } }), path: 'module.conv', want: 'conv' },
    {
      name: 'the torch.compile wrapper and the one inside it vanish',
      keys: COMPILED_DP_KEYS,
      rules: rules({ preset: { name: 'cpu' } }),
      path: '_orig_mod',
      want: null,
    },
    { name: 'below both wrappers', keys: COMPILED_DP_KEYS, rules: rules({ preset: { name: 'cpu' } }), path: '_orig_mod.module.fc', want: 'fc' },
    {
      name: 'ddp adds module. to every path',
      keys: ['conv.weight'],
      rules: rules({ preset: { name: 'ddp', worldSize: 4 } }),
      path: 'conv',
      want: 'module.conv',
    },
    { name: 'ddp: the old root becomes module', keys: ['conv.weight'], rules: rules({ preset: { name: 'ddp', worldSize: 4 } }), path: '', want: 'module' },
  ];
  for (const c of cases) assert.equal(keyMapper(c.keys, c.rules, false).mapModulePath(c.path), c.want, c.name);
});

test('addedModulePaths: each added prefix level is a module of its own', () => {
  const cases: [ConversionRules, string[]][] = [
    [NO_RULES, []],
    [rules({ preset: { name: 'cpu' } }), []],
    [rules({ preset: { name: 'dp' } }), ['']],
    [rules({ preset: { name: 'ddp', worldSize: 4 }, addPrefix: 'net.' }), ['', 'module']],
    [rules({ addPrefix: 'net.' }), ['']],
  ];
  for (const [r, want] of cases) assert.deepEqual(addedModulePaths(r), want, `${JSON.stringify(r.preset)} ${r.addPrefix}`);
});

test('deviceMapper: map_location entries win, then the preset, else the tag as saved', () => {
  const cases: { name: string; rules: ConversionRules; rank?: number; tag: string; want: string }[] = [
    { name: 'no rules keep the tag', rules: NO_RULES, tag: 'cuda:3', want: 'cuda:3' },
    { name: 'cpu', rules: rules({ preset: { name: 'cpu' } }), tag: 'cuda:3', want: 'cpu' },
    { name: 'gpu:K', rules: rules({ preset: { name: 'gpu', index: 2 } }), tag: 'cpu', want: 'cuda:2' },
    { name: 'dp keeps weights on device_ids[0]', rules: rules({ preset: { name: 'dp' } }), tag: 'cuda:5', want: 'cuda:0' },
    { name: 'ddp: rank r on cuda:r', rules: rules({ preset: { name: 'ddp', worldSize: 4 } }), rank: 3, tag: 'cpu', want: 'cuda:3' },
    {
      name: 'an exact map_location entry beats the preset',
      rules: rules({ preset: { name: 'cpu' }, mapLocation: [{ from: 'cuda:1', to: 'cuda:0' }] }),
      tag: 'cuda:1',
      want: 'cuda:0',
    },
    {
      name: 'the exact entry beats *',
      rules: rules({
        mapLocation: [
          { from: '*', to: 'cpu' },
          { from: 'cuda:1', to: 'cuda:0' },
        ],
      }),
      tag: 'cuda:1',
      want: 'cuda:0',
    },
    {
      name: '* matches any other tag',
      rules: rules({
        mapLocation: [
          { from: '*', to: 'cpu' },
          { from: 'cuda:1', to: 'cuda:0' },
        ],
      }),
      tag: 'mps',
      want: 'cpu',
    },
  ];
  for (const c of cases) assert.equal(deviceMapper(c.rules, c.rank ?? 0)(c.tag), c.want, c.name);
});

test('keyMapper.distinctStayDistinct: only where no two distinct keys can become one', () => {
  // every key wrapped (the preset strips the shared 'module.'; an inner 'module.' stays)
  const wrapped = ['module.a', 'module.module.a', 'module.b.w', 'module.b.b'];
  // keys a rule can make one: 'module.a' and 'a' under --strip-prefix module.
  const mixed = ['module.a', 'a', 'module.b.w', 'module.b.b'];
  const cases: { name: string; keys: string[]; rules: ConversionRules; want: boolean }[] = [
    { name: 'no rules', keys: wrapped, rules: NO_RULES, want: true },
    { name: 'cpu (shared wrapper prefix stripped)', keys: wrapped, rules: rules({ preset: { name: 'cpu' } }), want: true },
    { name: 'dp (stripped, one added)', keys: wrapped, rules: rules({ preset: { name: 'dp' } }), want: true },
    { name: 'cpu on keys not all wrapped', keys: mixed, rules: rules({ preset: { name: 'cpu' } }), want: true },
    { name: '--add-prefix and --include', keys: mixed, rules: rules({ addPrefix: 'x.', include: 'b' }), want: true },
    { name: '--strip-prefix', keys: mixed, rules: rules({ stripPrefixes: ['module.'] }), want: false },
    { name: '--rename', keys: mixed, rules: rules({ renames: [{ pattern: '\\.[wb]$', replacement: '.p' }] }), want: false },
    { name: 'a key map', keys: mixed, rules: rules({ keyMap: [{ from: 'module.a', to: 'module.b.w' }] }), want: false },
  ];
  for (const c of cases) {
    const m = keyMapper(c.keys, c.rules, false);
    assert.equal(m.distinctStayDistinct, c.want, c.name);
    const mapped = c.keys.map((k) => m.map(k)).filter((k) => k !== null);
    if (c.want) assert.equal(new Set(mapped).size, mapped.length, `${c.name}: ${mapped.join(', ')}`);
    else assert.ok(new Set(mapped).size < mapped.length, `${c.name}: the case makes two keys one (${mapped.join(', ')})`);
  }
});
