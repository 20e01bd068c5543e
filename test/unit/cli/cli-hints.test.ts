// The newcomer's CLI: "did you mean" for commands, options, presets and --to; serve in the
// help; what --preset ddp does without --world-size; where output goes without -o; and
// inspect's tree folding numbered runs and keeping --width on flat state dicts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dtypeByName } from '../../../shared/dtypes.ts';
import { closest } from '../../../shared/did-you-mean.ts';
import { keyTrie } from '../../../main/checkpoint/key-trie.ts';
import type { StateDictEntry } from '../../../main/checkpoint/roles.ts';
import { REBUILD_TENSOR_V2, TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { runCli } from '../../helpers/run-cli.ts';

const fx = (p: string): string => new URL(`../../fixtures/torch/${p}`, import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'ckpt-cli-hints-'));

test('closest: a typo is matched, an unrelated word is not', () => {
  assert.equal(closest('inpsect', ['inspect', 'convert']), 'inspect');
  assert.equal(closest('cpuu', ['cpu', 'gpu', 'dp', 'ddp']), 'cpu');
  assert.equal(closest('banana', ['inspect', 'convert', 'serve']), null);
  assert.equal(closest('inspect', ['inspect']), null, 'an exact word needs no suggestion');
});

test('unknown command, option, preset and --to say what was meant, in one line, exit 2', () => {
  const cases: [string[], RegExp][] = [
    [['inpsect', 'x.pt'], /^ckpt: usage: unknown command 'inpsect' \(did you mean 'inspect'\?\); run `ckpt help` for the list\n$/],
    [
      ['convert', fx('dp_state_dict.pt'), '--presett', 'cpu'],
      /^ckpt: usage: Unknown option '--presett' \(did you mean '--preset'\?\); run `ckpt help convert`\n$/,
    ],
    [['reshard', fx('dp_state_dict.pt'), '--too', 'single', '-o', join(tmp, 'x.pt')], /Unknown option '--too' \(did you mean '--to'\?\)/],
    [['serve', '--tokn', 'abc'], /Unknown option '--tokn' \(did you mean '--token'\?\)/],
    [['convert', fx('dp_state_dict.pt'), '--preset', 'cpuu'], /^ckpt: usage: unknown preset 'cpuu' \(did you mean 'cpu'\?\); use cpu, gpu\[:K\], dp or ddp\n$/],
    [
      ['reshard', fx('dp_state_dict.pt'), '--to', 'ranks', '-o', join(tmp, 'r.pt')],
      /^ckpt: usage: --to ranks needs the number of ranks: --to ranks:N, e\.g\. --to ranks:2\n$/,
    ],
    [['reshard', fx('dp_state_dict.pt'), '--to', 'singel', '-o', join(tmp, 'r.pt')], /--to singel \(did you mean 'single'\?\): use single/],
  ];
  for (const [args, want] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
  }
});

test('ckpt --help lists serve; convert --help says where output goes without -o', () => {
  assert.match(runCli(['--help']).stdout, /^ {2}serve \[--port N\] \[--token T\] +the app in a web browser/m);
  const help = runCli(['convert', '--help']).stdout;
  assert.match(help, /without it, beside the input as <name>\.<preset><ext>\s+\(model\.pt → model\.cpu\.pt\)/);
  assert.match(help, /--world-size N .*default 1/);
});

test('--preset ddp without --world-size says it writes one rank', () => {
  const out = join(tmp, 'ddp.pt');
  const r = runCli(['convert', fx('cpu_state_dict.pt'), '--preset', 'ddp', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^note: --preset ddp without --world-size writes 1 rank \(rank 0 on cuda:0, 'module\.' keys\); add --world-size N for N rank files$/m);
  const two = runCli(['convert', fx('cpu_state_dict.pt'), '--preset', 'ddp', '--world-size', '2', '-o', join(tmp, 'ddp2.pt')]);
  assert.equal(two.code, 0, two.stderr);
  assert.doesNotMatch(two.stderr, /note:/);
});

const f32 = dtypeByName('float32')!;
const tensor = (n: number): TorchTensor => new TorchTensor(REBUILD_TENSOR_V2, null, 'dense', f32, [n], [1], 0, null);
const [four, eight] = [tensor(4), tensor(8)];
/** `key.weight` and `key.bias`, as a block of a state dict */
const block = (key: string, inner = four): StateDictEntry[] => [
  { key: `${key}weight`, tensor: inner },
  { key: `${key}bias`, tensor: inner },
];
const shown = (entries: StateDictEntry[]): [string | number, string][] => keyTrie(entries, 64).shown.map((n) => [n.key, n.summary]);

test('numbered runs fold when what they show is the same, and only then', () => {
  assert.deepEqual(shown([...block('0.'), ...block('1.'), ...block('2.'), ...block('3.'), ...block('4.', eight), { key: 'head', tensor: four }]), [
    ['{0..3}.', '4 × 2 tensors'],
    ['4.', '2 tensors'],
    ['head', 'float32[4] cpu'],
  ]);
  const flat = keyTrie(
    Array.from({ length: 10_000 }, (_, i) => ({ key: `layer${i}.weight`, tensor: four })),
    64,
  );
  assert.deepEqual(
    flat.shown.map((n) => [n.key, n.summary]),
    [['layer{0..9999}.weight', '10000 × float32[4] cpu']],
  );
  assert.equal(flat.total, 1);
  // two in a row, a gap in the numbers, or zero-padded names stay as they are
  assert.equal(shown([...block('0.'), ...block('1.')]).length, 2);
  assert.equal(shown([...block('0.'), ...block('1.'), ...block('3.')]).length, 3);
  assert.equal(shown(['l00', 'l01', 'l02'].map((key) => ({ key, tensor: four }))).length, 3);
});

test('inspect prints a 10,000-key flat state dict in a few lines', (t) => {
  const file = join(tmp, 'flat.pt');
  const py = spawnSync(
    '/usr/bin/python3',
    [
      '-I',
      '-c',
      `import torch, collections\ntorch.save(collections.OrderedDict((f'layer{i}.weight', torch.zeros(2)) for i in range(10000)), ${JSON.stringify(file)})`,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (py.status !== 0) {
    if (process.env['CI'] === 'true') assert.fail(`torch 1.13 could not write the file: ${py.stderr}`);
    t.skip(`/usr/bin/python3 cannot write a torch file here (${py.stderr.trim().split('\n').pop()})`);
    return;
  }
  const r = runCli(['inspect', file, '--no-devices']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /└─ layer\{0\.\.9999\}\.weight {2}10000 × float32\[2\] cpu\n$/);
  assert.ok(r.stdout.split('\n').length < 30, `${r.stdout.split('\n').length} lines`);
});

test('one tensor is "1 tensor in 1 storage"', () => {
  const r = runCli(['inspect', new URL('../../fixtures/numpy/scalar.npy', import.meta.url).pathname, '--no-devices']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^tensors {5}1 tensor in 1 storage, 8 B$/m);
});
