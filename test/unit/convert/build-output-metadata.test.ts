// A `state_dict()` always carries `_metadata`; where no key and no module path changes, the output
// is the source's own dict (no copy of every entry), and where they change, the copy has them
// renamed in both the keys and the metadata.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildOutputTree } from '../../../main/convert/build-output.ts';
import { mapRoles, rulesFor } from '../../../main/convert/plan.ts';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { PyDict } from '../../../main/formats/values/python-values.ts';
import { NO_RULES, parsePreset, type ConversionRules } from '../../../shared/presets.ts';

function output(file: string, preset: string): { root: unknown; out: PyDict } {
  const ck = openCheckpoint(file);
  try {
    const rules = rulesFor(ck, { ...NO_RULES, preset: parsePreset(preset) as ConversionRules['preset'] });
    const out = buildOutputTree(ck, rules, mapRoles(ck, rules));
    assert.ok(out instanceof PyDict);
    return { root: ck.reading.root, out };
  } finally {
    ck.close();
  }
}

test('a state dict with _metadata whose keys all stay is written as it is', () => {
  const { root, out } = output('test/fixtures/torch/cpu_state_dict.pt', 'cpu');
  const meta = out.attrs?.get('_metadata');
  assert.ok(meta instanceof PyDict && meta.size > 0, 'the fixture is a state_dict() with _metadata');
  assert.equal(out, root, 'no copy');
});

test('a state dict whose keys change gets a copy with keys and _metadata paths renamed', () => {
  const { root, out } = output('test/fixtures/torch/dp_state_dict.pt', 'cpu');
  assert.notEqual(out, root);
  assert.ok(out.entries.every(([k]) => typeof k === 'string' && !k.startsWith('module.')));
  const meta = out.attrs?.get('_metadata');
  assert.ok(meta instanceof PyDict && meta.size > 0);
  assert.ok(
    meta.entries.every(([k]) => typeof k === 'string' && !k.startsWith('module')),
    meta.entries.map(([k]) => k).join(','),
  );
});
