// Values that hold themselves, or are held at two places, survive a conversion as torch.load sees
// them. A tuple that holds itself through a list or dict (`t = ([],); t[0].append(t)`) is legal
// Python: CPython's `save_tuple` writes its items, then POPs them and GETs the tuple already built.
// The pickler once wrote such a tuple twice, and the copy convert makes of the tree
// (checkpoint/copy-tree.ts) made a second tuple too, and one set per place a set was held: after a
// "verified" convert, `t[0][0] is t` was False. torch's weights-only unpickler has no POP, so the
// faithful output needs --keep-objects, as the source needs weights_only=False.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PY, removeTemps, reportOf, runCliAsync, tempDir, torchSkipReason } from './helpers.ts';

const skip = torchSkipReason() ?? false;
after(removeTemps);

const python = (code: string, ...args: string[]): string => {
  const r = spawnSync(PY, ['-I', '-B', '-c', code, ...args], { encoding: 'utf8', timeout: 120_000, cwd: tmpdir() });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
};

// argv[2] == 'self': with the tuples that hold themselves
const MAKE = `import sys, torch
extra = {}
shared = (1, 2); extra['twice'] = [shared, shared]
one_set = {1, 2}; extra['sets'] = [one_set, one_set]
# the list is met first: its tuple is built inside it and written without POP
list_first = []; list_first.append((list_first, 7)); extra['list_first'] = list_first
if sys.argv[2] == 'self':
    small = ([],); small[0].append(small); extra['small'] = small           # TUPLE1: POP then GET
    big = ([], 1, 2, 3); big[0].append(big); extra['big'] = big             # MARK: POP_MARK then GET
    through_dict = ({},); through_dict[0]['me'] = through_dict; extra['through_dict'] = through_dict
torch.save({'model': {'module.w': torch.arange(6.).reshape(2, 3)}, 'extra': extra}, sys.argv[1])`;

const CHECK = `import sys, json, torch
ck = torch.load(sys.argv[1])
sd = ck['extra']
out = {
  'keys': list(ck['model']),
  'w': ck['model']['w'].tolist(),
  'twice': sd['twice'][0] is sd['twice'][1] and sd['twice'][0] == (1, 2),
  'sets': sd['sets'][0] is sd['sets'][1] and sd['sets'][0] == {1, 2},
  'list_first': sd['list_first'][0][0] is sd['list_first'] and sd['list_first'][0][1] == 7,
}
if 'small' in sd:
    out['small'] = sd['small'][0][0] is sd['small'] and len(sd['small'][0]) == 1
    out['big'] = sd['big'][0][0] is sd['big'] and sd['big'][1:] == (1, 2, 3)
    out['through_dict'] = sd['through_dict'][0]['me'] is sd['through_dict']
print(json.dumps(out))`;

const SHARED = {
  keys: ['w'],
  w: [
    [0, 1, 2],
    [3, 4, 5],
  ],
  twice: true,
  sets: true,
  list_first: true,
};

test('shared tuples and sets, and a list holding a tuple that holds it, stay so through convert', { skip }, async () => {
  const dir = tempDir('recursive');
  const source = join(dir, 'source.pt');
  const output = join(dir, 'out.pt');
  python(MAKE, source, 'shared');
  const r = await runCliAsync(['convert', source, '--preset', 'cpu', '-o', output, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(python(CHECK, output)), SHARED);
});

test('a tuple that holds itself: refused in one line without --keep-objects, kept whole with it', { skip }, async () => {
  const dir = tempDir('recursive-self');
  const source = join(dir, 'source.pt');
  const output = join(dir, 'out.pt');
  python(MAKE, source, 'self');
  const refused = await runCliAsync(['convert', source, '--preset', 'cpu', '-o', output]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(
    refused.stderr.trim(),
    /^ckpt: error: .*source\.pt: the output would hold a tuple that contains itself, which only the POP opcode writes .*nothing was written; add --keep-objects/,
  );
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  assert.equal(existsSync(output), false, 'nothing written');

  const kept = await runCliAsync(['convert', source, '--preset', 'cpu', '--keep-objects', '-o', output, '--json']);
  assert.equal(kept.code, 0, kept.stderr);
  assert.deepEqual(reportOf(kept.stdout).codeFree?.kept, ['a tuple that holds itself (POP)'], 'the report says what --keep-objects kept');
  assert.deepEqual(JSON.parse(python(CHECK, output)), { ...SHARED, small: true, big: true, through_dict: true });
});
