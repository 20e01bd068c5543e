// What the API lets through for a Python-model verification: the class and its arguments, an
// absolute interpreter path, and no graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyOptions } from '../../../main/service/check-args.ts';
import { CheckpointError } from '../../../main/errors.ts';

const base = { data: '/d/x.npz', checkpoint: '/d/c.pt' };

test('a Python-model request needs no graph; its class, arguments and interpreter are checked', () => {
  assert.deepEqual(verifyOptions({ ...base, model: '', modelClass: '/d/m.py:Net', modelArgs: { width: 8 }, python: '/venv/bin/python' }), {
    ...base,
    model: '',
    modelClass: '/d/m.py:Net',
    modelArgs: { width: 8 },
    python: '/venv/bin/python',
  });
  const bad = (o: Record<string, unknown>, re: RegExp): void =>
    assert.throws(
      () => verifyOptions({ ...base, ...o }),
      (e: unknown) => e instanceof CheckpointError && e.kind === 'usage' && re.test(e.message),
    );
  bad({ model: '' }, /options\.model/);
  bad({ model: '', modelClass: '/d/m.py:Net', python: 'python3' }, /options\.python/);
  bad({ model: '', modelClass: '/d/m.py:Net', modelArgs: [1] }, /options\.modelArgs must be an object/);
});
