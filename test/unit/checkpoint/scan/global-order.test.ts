// The security report's globals are sorted by class, then by name as String.prototype.localeCompare
// orders them, without ICU for names of letters, digits, `_` and `.` (compareNames).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareNames } from '../../../../main/checkpoint/scan/global-order.ts';
import { prng } from '../../../helpers/prng.ts';

const sign = (n: number): number => Math.sign(n);

test('compareNames: the sign of localeCompare, on every pair of 4,000 random global-like names', () => {
  const next = prng(7);
  // few characters, so that names often share prefixes, differ only in case, or are prefixes of one another
  const chars = '_.09aAbBzZ';
  const names = Array.from({ length: 4000 }, () => Array.from({ length: Math.floor(next() * 6) }, () => chars[Math.floor(next() * chars.length)]).join(''));
  names.push(
    'torch._utils._rebuild_tensor_v2',
    'torch.FloatStorage',
    'collections.OrderedDict',
    'torch._utils._rebuild_parameter',
    'numpy.core.multiarray._reconstruct',
    'builtins.set',
    'torch.BFloat16Storage',
    '__builtin__.set',
  );
  for (let i = 0; i < names.length; i++)
    for (const j of [i, i + 1, (i * 7919) % names.length, names.length - 1 - i]) {
      const [a, b] = [names[i]!, names[j % names.length]!];
      assert.equal(sign(compareNames(a, b)), sign(a.localeCompare(b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
});

test('compareNames: names with any other character are compared by localeCompare', () => {
  for (const [a, b] of [
    ['a-b', 'a_b'],
    ['a b', 'ab'],
    ['é', 'e'],
    ['a\u0000b', 'ab'],
    ['posix.system', 'os.system '],
  ])
    assert.equal(compareNames(a!, b!), a!.localeCompare(b!), `${a} vs ${b}`);
});
