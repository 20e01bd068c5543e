// `ckpt inspect … | head`: the reader closes the pipe after a few bytes; the command ends quietly
// (exit 0, nothing on stderr) instead of a Node EPIPE stack trace (issue 16). Needs `npm run build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoDagLists } from '../../fuzz/hostile-inputs.ts';
import { CLI } from '../../helpers/run-cli.ts';

test('ckpt inspect --json | head -c 100: exit 0 and an empty stderr', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-epipe-'));
  try {
    const file = join(dir, 'wide.pkl');
    writeFileSync(file, memoDagLists(40)); // about 1 MB of JSON: far more than a pipe buffer holds
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI}" inspect "${file}" --json | head -c 100 >/dev/null; echo "exit=\${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
    });
    assert.equal(r.stdout.trim(), 'exit=0', r.stderr);
    assert.equal(r.stderr, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
