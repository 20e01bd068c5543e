// What the API lets through for a Python-model verification: the class and its arguments, an
// absolute interpreter path, and no graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkValue } from '../../../shared/checks.ts';
import { VerifyOptionsSchema } from '../../../shared/verify.ts';

const base = { data: '/d/x.npz', checkpoint: '/d/c.pt' };

test('a Python-model request needs no graph; its class, arguments and interpreter are checked', () => {
  const checked = checkValue(
    VerifyOptionsSchema,
    { ...base, model: '', modelClass: '/d/m.py:Net', modelArgs: { width: 8 }, python: '/venv/bin/python' },
    'options',
  );
  assert.deepEqual(checked, {
    ok: true,
    value: {
      ...base,
      model: '',
      modelClass: '/d/m.py:Net',
      modelArgs: { width: 8 },
      python: '/venv/bin/python',
    },
  });
  const bad = (o: Record<string, unknown>, re: RegExp): void => {
    const r = checkValue(VerifyOptionsSchema, { ...base, ...o }, 'options');
    assert.ok(!r.ok && re.test(r.message), JSON.stringify(r));
  };
  bad({ model: '' }, /options\.model/);
  bad({ model: '', modelClass: '/d/m.py:Net', python: 'python3' }, /options\.python/);
  bad({ model: '', modelClass: '/d/m.py:Net', modelArgs: [1] }, /options\.modelArgs must be an object/);
});
