// `ckpt convert` of a plain numpy pickle (issue 16): it used to write a torch file that loads only
// with weights_only=False. Now it says what the file is and writes nothing. The claim in the
// message is checked with real torch 2.x: torch.save of the same object is refused by
// torch.load(weights_only=True). Needs `npm run build`, numpy (/usr/bin/python3) and .venv-torch2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, runCli } from '../../helpers/run-cli.ts';

const NUMPY_PYTHON = '/usr/bin/python3';
const TORCH2 = join(REPO, '.venv-torch2/bin/python');
const why = !existsSync(NUMPY_PYTHON) ? `${NUMPY_PYTHON} is missing` : !existsSync(TORCH2) ? '.venv-torch2 is missing (test/fixtures/setup-torch2.sh)' : false;

test('convert of a plain numpy pickle: one line saying what it is, nothing written; torch agrees it would need weights_only=False', {
  skip: process.env['CI'] ? false : why,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-np-pickle-'));
  const file = join(dir, 'arrays.pkl');
  execFileSync(NUMPY_PYTHON, [
    '-c',
    `import pickle, numpy as np; pickle.dump({'w': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.array([1, 2, 3])}, open(${JSON.stringify(file)}, 'wb'), protocol=2)`,
  ]);
  const out = join(dir, 'out.pt');
  const r = runCli(['convert', file, '--preset', 'cpu', '-o', out]);
  assert.equal(r.code, 2, r.stdout);
  assert.equal(
    r.stderr.trim(),
    `ckpt: error: ${file}: a plain pickle (pickle.dump, not torch.save) of 2 numpy arrays with no torch tensors; as a torch file it would load only with weights_only=False, so nothing was written; save the arrays with np.savez (ckpt converts .npz to tensors exactly) or torch.save them as tensors`,
  );
  assert.deepEqual(readdirSync(dir), ['arrays.pkl']);
  const torchSays = execFileSync(
    TORCH2,
    [
      '-c',
      `
import io, pickle, torch
buf = io.BytesIO(); torch.save(pickle.load(open(${JSON.stringify(file)}, 'rb')), buf)
try:
    buf.seek(0); torch.load(buf, weights_only=True); print('loads')
except pickle.UnpicklingError:
    buf.seek(0); torch.load(buf, weights_only=False); print('needs weights_only=False')
`,
    ],
    { encoding: 'utf8' },
  ).trim();
  assert.equal(torchSays, 'needs weights_only=False');
});
