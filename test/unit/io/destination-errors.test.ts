// What a failed write says about its destination (issue 16): a dangling symbolic link is named as
// one (it used to read "appeared while writing"), a DCP write cut off by the OS names the folder
// (it used to read "file: …"), and no error names the hidden temporary file. Needs `npm run build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../../../main/errors.ts';
import { writeCheckedAtomically } from '../../../main/io/atomic-file.ts';
import { CLI, runCli } from '../../helpers/run-cli.ts';

const SOURCE = new URL('../../fixtures/torch/cpu_state_dict.pt', import.meta.url).pathname;
const temp = (): string => mkdtempSync(join(tmpdir(), 'ckpt-dest-'));

test('a destination that is a dangling symbolic link: refused naming the link and its target; --force replaces the link', () => {
  const dir = temp();
  const link = join(dir, 'link.pt');
  symlinkSync('/nonexistent/x.pt', link);
  const r = runCli(['convert', SOURCE, '--preset', 'cpu', '-o', link]);
  assert.equal(r.code, 2, r.stdout);
  assert.equal(
    r.stderr.trim(),
    `ckpt: error: ${link} is a symbolic link to /nonexistent/x.pt, which does not exist; remove the link, or pass --force to replace the link with the output`,
  );
  assert.deepEqual(readdirSync(dir), ['link.pt']);
  assert.equal(runCli(['convert', SOURCE, '--preset', 'cpu', '-o', link, '--force']).code, 0);
});

test('a DCP write cut off by the file-size limit (EFBIG, no path in the error) names the destination folder', () => {
  const dir = temp();
  const out = join(dir, 'dcp');
  const r = spawnSync('bash', ['-c', `ulimit -f 4; exec "${process.execPath}" "${CLI}" reshard "${SOURCE}" --to dcp:2 -o "${out}"`], { encoding: 'utf8' });
  assert.equal(r.signal, null);
  assert.equal(r.status, 2, r.stdout);
  assert.equal(r.stderr.trim(), `ckpt: error: ${out}: file too large for this file system or for the file size limit (ulimit -f)`);
  assert.deepEqual(readdirSync(dir), [], 'nothing left behind');
});

test("an error about the temporary file is told as the destination's", async () => {
  const dir = temp();
  const dest = join(dir, 'out.bin');
  let tmpName = '';
  await assert.rejects(
    writeCheckedAtomically(
      dest,
      false,
      (_fd, tmp) => void (tmpName = tmp),
      async (tmp) => {
        throw new CheckpointError('verify-failed', `${tmp}: read back 3 bytes, 4 were written`, tmp);
      },
    ),
    (e: unknown) => {
      assert.ok(e instanceof CheckpointError);
      assert.equal(e.message, `${dest}: read back 3 bytes, 4 were written`);
      assert.equal(e.file, dest);
      return true;
    },
  );
  assert.ok(tmpName.includes('.ckpt-tmp-'));
  assert.deepEqual(readdirSync(dir), []);
});
