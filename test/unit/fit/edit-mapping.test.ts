// The app's row edits of a fit, on the ambiguous case torch 1.13 made (generate_fit.py: proj
// could be query or key): the user says which, the fit loads, and convert --fit's path writes it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertToFit, fitCheckpoint } from '../../../main/fit/convert-fit.ts';
import { tensorKeys } from '../../helpers/tensor-keys.ts';
import { REPO } from '../../helpers/run-cli.ts';

const DIR = join(REPO, 'test/fixtures/fit');
const tmp = mkdtempSync(join(tmpdir(), 'ckpt-fit-edits-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const source = join(DIR, 'projv1.pt');
const target = join(DIR, 'projv2_init.pt');
const toQuery = [
  { from: 'proj.weight', to: 'query.weight' },
  { from: 'proj.bias', to: 'query.bias' },
];

test('edits settle the ambiguity: proj → query, key keeps the model’s own values', () => {
  const asked = fitCheckpoint(source, target);
  assert.equal(asked.ambiguous.length, 1);
  const r = fitCheckpoint(source, target, [], toQuery);
  assert.deepEqual(r.ambiguous, []);
  assert.equal(r.fits, true);
  assert.equal(r.after.message, null);
  assert.deepEqual(
    r.mapping.filter((m) => m.from.startsWith('proj.')),
    toQuery,
  );
  assert.ok(r.rules.some((x) => x.text === 'your edits: proj.weight → query.weight, proj.bias → query.bias'));
  assert.ok(r.rules.some((x) => x.kind === 'fill-from-target' && x.text.startsWith('key.weight, key.bias keep the model')));
});

test('an edit that leaves out a key the model needs, with no tensors to fill it: torch’s missing key', () => {
  const shapes = {
    text: 'query.weight torch.Size([8, 8])\nquery.bias torch.Size([8])\nkey.weight torch.Size([8, 8])\nkey.bias torch.Size([8])\nout.weight torch.Size([4, 8])\nout.bias torch.Size([4])\n',
  };
  const r = fitCheckpoint(source, shapes, [], [...toQuery, { from: 'out.bias', to: null }]);
  assert.equal(r.fits, false);
  assert.ok(r.after.missing.includes('out.bias'));
});

test('two rows sent to one key is a one-line usage error', () => {
  assert.throws(
    () => fitCheckpoint(source, target, [], [...toQuery, { from: 'out.bias', to: 'query.bias' }]),
    (e: Error & { kind?: string }) => e.kind === 'usage' && /'proj\.bias' and 'out\.bias' both go to 'query\.bias'/.test(e.message),
  );
});

test('convert --fit with the edits writes a verified file in the model’s key order; a failing edit writes nothing', async () => {
  const out = join(tmp, 'fitted.pt');
  const { fit, report } = await convertToFit(source, { file: target }, { output: out, force: false, edits: toQuery });
  assert.equal(fit.fits, true);
  assert.equal(report.verified, true);
  assert.deepEqual(tensorKeys(out), ['query.weight', 'query.bias', 'key.weight', 'key.bias', 'out.weight', 'out.bias']);
  const refused = join(tmp, 'refused.pt');
  await assert.rejects(
    convertToFit(source, { file: target }, { output: refused, force: false, edits: [...toQuery, { from: 'out.bias', to: 'out.b' }] }),
    (e: Error & { kind?: string }) =>
      e.kind === 'usage' && /with your edits it does not load into .*projv2_init\.pt \(unexpected out\.b\); nothing was written$/.test(e.message),
  );
  assert.equal(existsSync(refused), false);
});
