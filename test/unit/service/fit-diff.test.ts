// The API's fit and diff methods, run by the service in its worker pool: a pasted torch error as
// the target, a diff of two real files, and the argument checks at the boundary.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiError } from '../../../shared/api.ts';
import { createApiService } from '../../../main/service/service.ts';
import { REPO } from '../../helpers/run-cli.ts';
import { tempDir, throughTransport } from './helpers.ts';

const FIT = path.join(REPO, 'test/fixtures/fit');
const service = throughTransport(createApiService({ shell: 'web', configDir: tempDir('config') }));
after(() => service.close());

test('fitCheckpoint: the error text pasted into the app is the target', async () => {
  const text = fs.readFileSync(path.join(FIT, 'compiled_dp_error.txt'), 'utf8');
  const r = await service.fitCheckpoint(path.join(FIT, 'compiled_dp.pt'), { text }, []);
  assert.equal(r.target.kind, 'load-error');
  assert.equal(r.fits, true);
  assert.equal(r.unexpected.length, 16);
  const file = await service.fitCheckpoint(path.join(FIT, 'projv1.pt'), { file: path.join(FIT, 'projv2_init.pt') }, [
    { pattern: '^proj\\.', replacement: 'query.' },
  ]);
  assert.deepEqual(file.ambiguous, []);
  assert.deepEqual(file.after.missing, ['key.weight', 'key.bias']);
});

test('diffCheckpoints: one perturbed tensor, computed in a worker', async () => {
  const r = await service.diffCheckpoints(path.join(FIT, 'diff_base.pt'), path.join(FIT, 'diff_perturbed.pt'), false);
  assert.equal(r.verdict, 'different');
  assert.deepEqual(
    r.changed.map((c) => c.key),
    ['conv2.weight'],
  );
});

test('diffHistograms: the key of a diff on both sides, binned over one range', async () => {
  // dp.pt holds the same tensors under 'module.' keys: the report's key finds them on both sides
  const same = await service.diffHistograms(path.join(FIT, 'diff_base.pt'), path.join(FIT, 'dp.pt'), 'conv2.weight', false, 16);
  assert.deepEqual(same.a, same.b);
  const r = await service.diffHistograms(path.join(FIT, 'diff_base.pt'), path.join(FIT, 'diff_perturbed.pt'), 'conv2.weight', false, 16);
  const [ha, hb] = [r.a.histogram!, r.b.histogram!];
  assert.deepEqual([ha.lo, ha.hi], [hb.lo, hb.hi]);
  assert.equal(ha.lo, Math.min(r.a.min!, r.b.min!));
  assert.equal(ha.hi, Math.max(r.a.max!, r.b.max!));
  const sum = (xs: number[]): number => xs.reduce((x, y) => x + y, 0);
  assert.deepEqual([sum(ha.counts), sum(hb.counts)], [r.a.numel, r.b.numel]);
  assert.notDeepEqual(ha.counts, hb.counts, 'the 2 perturbed elements moved to other bins');
  await assert.rejects(
    service.diffHistograms(path.join(FIT, 'diff_base.pt'), path.join(FIT, 'diff_dropped.pt'), 'bn2.num_batches_tracked', false, 16),
    (e: ApiError) => e.info.kind === 'usage' && /diff_dropped\.pt: has no tensor 'bn2\.num_batches_tracked'/.test(e.info.message),
  );
});

test('bad arguments are one-line usage errors', async () => {
  await assert.rejects(
    service.diffCheckpoints('relative.pt', '/b.pt', false),
    (e: ApiError) => e.info.kind === 'usage' && /a must be an absolute path/.test(e.info.message),
  );
  await assert.rejects(
    service.fitCheckpoint('/a.pt', { file: '/x', text: 'y' } as never, []),
    (e: ApiError) => e.info.kind === 'usage' && /target must be \{file\} or \{text\}/.test(e.info.message),
  );
  await assert.rejects(
    service.fitCheckpoint(path.join(FIT, 'projv1.pt'), { text: 'this is not torch output' }, []),
    (e: ApiError) => e.info.kind === 'usage' && /line 1 is neither/.test(e.info.message),
  );
});
