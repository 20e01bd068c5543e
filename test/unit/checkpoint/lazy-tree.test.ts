// The report's container tree is built when first read (inspect's JSON, the UI's clone), not by
// analyse: a conversion never reads it. Read or serialised, it must be the very summary analyse
// built before, in the same place among the report's keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../../../main/inputs/open-checkpoint.ts';
import { summariseTree } from '../../../main/checkpoint/inspect.ts';

const FILE = 'test/fixtures/torch/compiled_dp_prefix.pt';

test('report.tree: built on first read, equal to the eager summary, in the same key position', () => {
  const ck = openCheckpoint(FILE);
  try {
    const eager = summariseTree('', ck.reading.root, 0, 64, new Set());
    const keys = Object.keys(ck.report);
    assert.ok(keys.indexOf('tree') === keys.indexOf('security') + 1 && keys.indexOf('notes') === keys.indexOf('tree') + 1, keys.join(','));
    const json = JSON.parse(JSON.stringify(ck.report)) as { tree: unknown };
    assert.deepEqual(json.tree, eager);
    assert.ok(ck.report.tree.children && ck.report.tree.children.length > 0, 'a state dict has children');
    assert.equal(ck.report.tree, ck.report.tree, 'built once, then kept');
    assert.deepEqual(structuredClone(ck.report).tree, eager, 'the UI receives a structured clone');
  } finally {
    ck.close();
  }
});

test('report.tree: an assigned tree replaces the summary', () => {
  const ck = openCheckpoint(FILE);
  try {
    ck.report.tree = { key: '', type: 'dict', summary: 'replaced' };
    assert.equal(JSON.parse(JSON.stringify(ck.report)).tree.summary, 'replaced');
  } finally {
    ck.close();
  }
});
