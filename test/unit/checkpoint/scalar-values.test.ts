// Non-tensor values decoded once for the CLI, the app and Verify: the sample training checkpoint
// (written by torch 1.13) holds epoch 15, best_acc as a numpy.float64 (the accuracy the
// generator measured with torch, in accuracy.json) and Adam's hyper-parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scalarValues } from '../../../main/checkpoint/scalar-values.ts';
import { PickleInput } from '../../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../../main/formats/pickle/unpickler.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { runCli } from '../../helpers/run-cli.ts';
import { SAMPLE } from '../service/helpers.ts';

const TRAIN = join(SAMPLE, 'digits-cnn', 'checkpoint.pth.tar');
const accuracy = (JSON.parse(readFileSync(join(SAMPLE, 'digits-cnn', 'accuracy.json'), 'utf8')) as { accuracy: number }).accuracy;

test('the report lists epoch, best_acc and the optimizer hyper-parameters, decoded', () => {
  const ck = openCheckpoint(TRAIN);
  try {
    const values = new Map(ck.report.values!.map((v) => [v.path.join('/'), `${v.text} ${v.type}`]));
    assert.equal(values.get('epoch'), '15 int');
    assert.equal(values.get('best_acc'), `${accuracy} numpy.float64`);
    assert.equal(values.get('optimizer/param_groups/0/lr'), '0.003 float');
    assert.equal(values.get('optimizer/param_groups/0/betas/1'), '0.999 float');
    assert.equal(values.get('optimizer/param_groups/0/amsgrad'), 'False bool');
    assert.match(values.get('optimizer/param_groups/0/params')!, /^10 items: 0, 1, 2, 3, … list$/);
    // no state-dict tensors and no pickle internals among them
    assert.ok(![...values.keys()].some((k) => k.startsWith('model') || k.includes('(args)')));
  } finally {
    ck.close();
  }
});

test('ckpt inspect prints best_acc as its number, not as numpy pickle internals', () => {
  const r = runCli(['inspect', TRAIN, '--no-devices']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`└─ best_acc  numpy\\.float64 ${String(accuracy).replace('.', '\\.')}\\n$`));
  // the security lines name the global itself (the scan's finding); the values are printed decoded
  const values = r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('security') && !l.includes('weights_only'))
    .join('\n');
  assert.doesNotMatch(values, /multiarray\.scalar|\(args\)/);
});

test('a list shared many times over through the memo is walked once: 40 self-references list its value once, at once', () => {
  // what `l = []; [l.append(l) for _ in range(40)]; l.append(3)` pickles to (protocol 2): each self-reference
  // is a memo GET, so the tree has 40^8 paths to depth 8 but one list (fickling's memo-expansion sample)
  const bytes = Buffer.from(`\x80\x02]q\x00(${'h\x00'.repeat(40)}K\x03e.`, 'latin1');
  const values = scalarValues(unpickle(PickleInput.fromBytes(new Uint8Array(bytes), 'self.pkl')).value);
  assert.deepEqual(
    values.map((v) => [v.path.join('/'), v.text]),
    [['40', '3']],
  );
});

test('top-level values after an optimizer of more than 200 values are still listed, before the optimizer values', () => {
  // layer-wise learning rates: one param group per layer, 40 groups of 7 hyper-parameters, saved before the epoch
  const script = [
    'import pickle, sys',
    "groups = [{'lr': 0.001 * 0.9 ** i, 'betas': (0.9, 0.999), 'eps': 1e-08, 'weight_decay': 0.05, 'amsgrad': False, 'maximize': False, 'params': [i]} for i in range(40)]",
    "sys.stdout.buffer.write(pickle.dumps({'optimizer': {'state': {}, 'param_groups': groups}, 'epoch': 15, 'best_acc': 0.5}, protocol=2))",
  ].join('\n');
  const bytes = execFileSync('/usr/bin/python3', ['-c', script]);
  const values = scalarValues(unpickle(PickleInput.fromBytes(new Uint8Array(bytes), 'groups.pkl')).value);
  assert.equal(values.length, 200);
  assert.deepEqual(
    values.slice(0, 2).map((v) => `${v.path.join('/')} ${v.text}`),
    ['epoch 15', 'best_acc 0.5'],
  );
  assert.deepEqual(values[2]!.path, ['optimizer', 'param_groups', 0, 'lr']);
});
