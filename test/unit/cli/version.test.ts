import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { REPO, runCli } from '../../helpers/run-cli.ts';

const version = (JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')) as { version: string }).version;

test('ckpt --version and the help header print the version in package.json (the bundle inlines it)', () => {
  const v = runCli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout, `${version}\n`);
  const help = runCli(['help']);
  assert.match(help.stdout, new RegExp(`^ckpt ${version.replace(/\./g, '\\.')}: `));
});
