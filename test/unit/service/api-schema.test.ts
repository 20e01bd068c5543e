// The argument schemas (shared/api-schema.ts, shared/checks.ts) on their own: paths normalised
// as Node's path.posix.normalize does, one line per wrong argument with the path to the value,
// and the order the API always checked in (unknown field, missing field, then each field).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { checkArguments } from '../../../shared/api-schema.ts';
import { normalizePath } from '../../../shared/checks.ts';
import { NO_RULES } from '../../../shared/presets.ts';

test('normalizePath is path.posix.normalize for absolute paths', () => {
  for (const p of ['/', '//', '/a', '/a/', '/a//b', '/a/./b', '/a/../b', '/../a', '/a/b/../../..', '/a/b/.', '/a/b/..', '/a/.../b', '/a/b//', '/.a/..b/c.'])
    assert.equal(normalizePath(p), path.posix.normalize(p), p);
});

test('a wrong argument is one line naming it, with the path to the value', () => {
  const rules = { ...NO_RULES, preset: null };
  const cases: [string, unknown[], string][] = [
    ['inspect', ['rel.pt'], "file must be an absolute path, not 'rel.pt'"],
    ['inspect', [], 'inspect takes 1 argument (file), not 0'],
    [
      'previewConversion',
      ['/a', { ...rules, preset: { name: 'ddp', worldSize: 0 } }, null],
      'rules.preset.worldSize must be a whole number from 1 to 4096, not number',
    ],
    ['previewConversion', ['/a', { preset: 'cpu' }, null], 'rules.stripPrefixes is missing'],
    ['previewConversion', ['/a', { ...rules, x: 1, unwrap: 'no' }, null], "rules has an unknown field 'x'"],
    ['previewConversion', ['/a', { ...rules, mapLocation: [{ from: 'cpu', to: 'tpu' }] }, null], "rules.mapLocation[0]: 'tpu' is not a device tag"],
    ['devicePlan', [{ 'cuda:0': -1 }], "deviceCounts['cuda:0'] must be a whole number from 0 to 9007199254740991, not number"],
    ['devicePlan', [{ 'cuda:0; rm': 1 }], "deviceCounts: 'cuda:0; rm' is not a device tag"],
    ['fitCheckpoint', ['/a', {}, []], 'target must be {file} or {text}'],
  ];
  for (const [method, args, message] of cases) assert.deepEqual(checkArguments(method as 'inspect', args), { ok: false, message }, method);
});

test('checked arguments come back normalised; optional trailing ones may be left out or null', () => {
  assert.deepEqual(checkArguments('inspect', ['/a//b/../c.pt']), { ok: true, value: ['/a/c.pt'] });
  const r = checkArguments('devicePlan', [{ 'cuda:0': 3 }, null]);
  assert.ok(r.ok);
  assert.deepEqual(r.value, [{ 'cuda:0': 3 }], 'a null optional argument is left out');
});
