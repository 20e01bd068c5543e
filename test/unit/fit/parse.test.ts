// The pasted forms of a target: torch's load_state_dict error and `key shape` lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLoadError } from '../../../main/fit/parse-load-error.ts';
import { parseShape, parseShapeLines } from '../../../main/fit/parse-shape-lines.ts';
import { loadErrorMessage, strictLoad } from '../../../main/fit/strict-load.ts';
import { REPO } from '../../helpers/run-cli.ts';

const cases = JSON.parse(readFileSync(join(REPO, 'test/fixtures/fit/cases.json'), 'utf8')) as { fit: { name: string; error: string }[] };

test('every shape form people paste', () => {
  assert.deepEqual(parseShape('torch.Size([8, 3, 3, 3])'), [8, 3, 3, 3]);
  assert.deepEqual(parseShape('torch.Size([])'), []);
  assert.deepEqual(parseShape('[8, 3, 3, 3]'), [8, 3, 3, 3]);
  assert.deepEqual(parseShape('(8, 3, 3, 3)'), [8, 3, 3, 3]);
  assert.deepEqual(parseShape('(8,)'), [8]);
  assert.deepEqual(parseShape('8x3x3x3'), [8, 3, 3, 3]);
  assert.deepEqual(parseShape('()'), []);
  assert.equal(parseShape('eight'), null);
  const r = parseShapeLines(
    '# model\nconv1.weight torch.Size([8, 3, 3, 3])\nbn.num_batches_tracked torch.Size([])\n\nfc.weight: [10, 128]\nfc.bias\t(10,)\n"head.w" 4x4\n',
  );
  assert.ok('entries' in r);
  assert.deepEqual(r.entries, [
    { key: 'conv1.weight', shape: [8, 3, 3, 3] },
    { key: 'bn.num_batches_tracked', shape: [] },
    { key: 'fc.weight', shape: [10, 128] },
    { key: 'fc.bias', shape: [10] },
    { key: 'head.w', shape: [4, 4] },
  ]);
  assert.deepEqual(parseShapeLines('conv1.weight torch.Size([8, 3])\nthis is not a shape line\n'), { badLine: 2, line: 'this is not a shape line' });
});

test("torch's error, captured from a real load_state_dict call, parses back to its keys and shapes", () => {
  const head = cases.fit.find((c) => c.name === 'head')!.error;
  const e = parseLoadError(head);
  assert.equal(e.className, 'SmallCNN');
  assert.deepEqual(e.mismatched, [
    { key: 'fc.weight', checkpointShape: [10, 128], modelShape: [5, 128] },
    { key: 'fc.bias', checkpointShape: [10], modelShape: [5] },
  ]);
  const amb = parseLoadError(cases.fit.find((c) => c.name === 'ambiguous')!.error);
  assert.deepEqual(amb.missing, ['query.weight', 'query.bias', 'key.weight', 'key.bias']);
  assert.deepEqual(amb.unexpected, ['proj.weight', 'proj.bias']);
  // and the message rebuilt from the parts is torch's, byte for byte
  for (const c of cases.fit.filter((x) => x.error)) {
    const p = parseLoadError(c.error);
    assert.equal(`RuntimeError: ${loadErrorMessage(p.className!, p.missing, p.unexpected, p.mismatched)}\n`, c.error, c.name);
  }
});

test('strict loading: unexpected keys in module order, BatchNorm counters filled without _metadata, 1-element → 0-d loads', () => {
  const target = [
    { key: 'a.weight', shape: [2] },
    { key: 'bn.running_mean', shape: [2] },
    { key: 'bn.num_batches_tracked', shape: [] },
    { key: 'b.c.weight', shape: [3] },
    { key: 'scale', shape: [] },
  ];
  const r = strictLoad(
    {
      entries: [
        { key: 'b.c.extra', shape: [1] },
        { key: 'zzz', shape: [1] },
        { key: 'a.weight', shape: [2] },
        { key: 'bn.running_mean', shape: [2] },
        { key: 'b.c.weight', shape: [3] },
        { key: 'scale', shape: [1] },
      ],
      versions: null,
    },
    target,
    'M',
  );
  assert.deepEqual(r.missing, []);
  assert.deepEqual(r.unexpected, ['zzz', 'b.c.extra']);
  assert.deepEqual(r.mismatched, []);
  const v2 = strictLoad({ entries: [{ key: 'bn.running_mean', shape: [2] }], versions: new Map([['bn', 2]]) }, target, 'M');
  assert.ok(v2.missing.includes('bn.num_batches_tracked'));
});

test('an ONNX graph as the target: its initializers, and a note on the constants torch.onnx folded', async () => {
  const { fitCheckpoint } = await import('../../../main/fit/convert-fit.ts');
  const dir = join(REPO, 'build/sample-workspace/digits-cnn');
  const r = fitCheckpoint(join(dir, 'dp.pt'), join(dir, 'model.onnx'));
  assert.equal(r.target.kind, 'onnx');
  assert.equal(r.rules[0]!.from, 'module.');
  assert.ok(r.mapping.some((m) => m.from === 'module.fc.weight' && m.to === 'fc.weight'));
  assert.equal(r.fits, false, 'BatchNorm folded into Conv has no state-dict key: it cannot load');
  assert.ok(r.notes.some((n) => /initializers \(onnx::…\) are constants the exporter made/.test(n)));
});
