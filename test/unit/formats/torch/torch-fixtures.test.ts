// Every fixture written by real torch 1.13 (test/fixtures/generate.py) is read by the engine and
// compared value by value with what torch itself saw (the .expected.json beside each file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expectationFiles } from '../../../helpers/expectations.ts';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { readTensorBytes } from '../../../../main/checkpoint/tensor-bytes.ts';
import { valueAt } from '../../../../main/checkpoint/tree.ts';
import { PyBytes, PyComplex, PyDict, PyFloat, PyList, PyObject, PySet, PyTuple } from '../../../../main/formats/values/python-values.ts';
import { isNumpyScalar, numpyScalarValue } from '../../../../main/formats/numpy/numpy-values.ts';

const dir = new URL('../../../fixtures/torch/', import.meta.url).pathname;

interface Expected {
  fixture: string;
  file: string;
  format: string;
  layout: string;
  prefixes: string[];
  path_kind?: string;
  tensors: {
    path: (string | number)[];
    dtype: string;
    shape: number[];
    stride: number[];
    storage_offset: number;
    device: string;
    requires_grad: boolean;
    is_parameter: boolean;
    sha256: string;
    storage_id: number;
  }[];
  state_dict_keys?: string[];
  metadata_keys?: string[];
  metadata_path?: (string | number)[];
  scalars?: Record<string, unknown>;
  dangerous?: { path: string[]; global: string }[];
  globals?: string[];
}

const files = expectationFiles(dir);
test('the fixture generator has written the fixtures', () => {
  assert.ok(files.length >= 20, `expected at least 20 fixtures, found ${files.length}`);
});

for (const expFile of files) {
  const exp = JSON.parse(readFileSync(expFile, 'utf8')) as Expected;
  const ckptFile = join(dir, exp.file);
  test(`fixture ${exp.file}: engine reading equals torch's`, () => {
    assert.ok(existsSync(ckptFile));
    const c = openCheckpoint(ckptFile);
    try {
      const r = c.report;
      assert.equal(r.format, exp.format);
      assert.equal(r.layout.kind, exp.layout, `layout evidence: ${r.layout.evidence.join('; ')}`);
      assert.deepEqual(r.layout.prefixes, exp.prefixes);
      const key = (p: (string | number)[]): string => (exp.path_kind === 'state_dict_key' ? p.join('.') : JSON.stringify(p));
      const ours = new Map(c.tensors.map((t) => [key(t.path), t]));
      assert.equal(c.tensors.length, exp.tensors.length, `tensor count; ours: ${[...ours.keys()].join(' ')}`);
      const storageIds = new Map<number, object>();
      for (const e of exp.tensors) {
        const t = ours.get(key(e.path));
        assert.ok(t, `tensor at ${key(e.path)} missing`);
        const tt = t.tensor;
        assert.equal(tt.dtype.name, e.dtype, `${key(e.path)} dtype`);
        assert.deepEqual(tt.shape, e.shape, `${key(e.path)} shape`);
        assert.deepEqual(tt.stride, e.stride, `${key(e.path)} stride`);
        assert.equal(tt.storageOffset, e.storage_offset, `${key(e.path)} offset`);
        assert.equal(tt.device, e.device, `${key(e.path)} device`);
        assert.equal(tt.requiresGrad, e.requires_grad, `${key(e.path)} requires_grad`);
        if (exp.path_kind !== 'state_dict_key') assert.equal(tt.isParameter, e.is_parameter, `${key(e.path)} is_parameter`);
        const sha = createHash('sha256').update(readTensorBytes(tt)).digest('hex');
        assert.equal(sha, e.sha256, `${key(e.path)} value checksum`);
        // tensors torch saw sharing a storage share one here, and no others do
        const root = tt.storage!.viewOf ?? tt.storage!;
        const prev = storageIds.get(e.storage_id);
        if (prev) assert.equal(prev, root, `${key(e.path)} should share storage ${e.storage_id}`);
        else storageIds.set(e.storage_id, root);
      }
      assert.equal(new Set(storageIds.values()).size, storageIds.size, 'distinct storages stay distinct');
      if (exp.state_dict_keys) {
        assert.deepEqual(r.moduleStateDicts?.[0]?.keys, exp.state_dict_keys, 'whole-module state_dict() keys');
      }
      if (exp.metadata_keys) {
        const sd = valueAt(c.reading.root, exp.metadata_path ?? []);
        assert.ok(sd instanceof PyDict && sd.attrs, 'state dict carries _metadata');
        const meta = sd.attrs.get('_metadata');
        assert.ok(meta instanceof PyDict);
        assert.deepEqual(
          meta.entries.map(([k]) => k),
          exp.metadata_keys,
        );
      }
      for (const [dotted, want] of Object.entries(exp.scalars ?? {})) {
        checkScalar(dotted, valueAt(c.reading.root, dotted.split('.')), want);
      }
      const gl = new Set(r.security.globals.map((g) => g.name));
      for (const g of exp.globals ?? []) assert.ok(gl.has(g.replace(/^__builtin__\./, 'builtins.')), `global ${g} reported`);
      if (exp.dangerous) {
        assert.equal(r.security.verdict, 'dangerous');
        for (const d of exp.dangerous) assert.equal(r.security.globals.find((g) => g.name === d.global)?.class, 'dangerous');
      } else {
        assert.notEqual(r.security.verdict, 'dangerous');
      }
    } finally {
      c.close();
    }
  });
}

/** Compares one non-tensor leaf with the generator's JSON encoding of the Python value. */
function checkScalar(dotted: string, v: unknown, want: unknown): void {
  const msg = `value at ${dotted}`;
  if (isNumpyScalar(v as PyObject)) v = numpyScalarValue(v as PyObject);
  if (typeof want === 'number') {
    if (v instanceof PyFloat) assert.equal(v.value, want, msg);
    else assert.equal(v, want, msg);
  } else if (typeof want === 'string' || typeof want === 'boolean' || want === null) assert.equal(v, want, msg);
  else if (Array.isArray(want)) assert.ok(v instanceof PyList && v.items.length === want.length, msg);
  else {
    const w = want as { $type?: string; value?: string; hex?: string; items?: unknown[]; real?: number; imag?: number };
    switch (w.$type) {
      case 'int':
        assert.equal(String(v), w.value, msg);
        break;
      case 'bytes':
        assert.ok(v instanceof PyBytes && Buffer.from(v.data).toString('hex') === w.hex, msg);
        break;
      case 'set':
        assert.ok(v instanceof PySet && v.items.length === w.items!.length, msg);
        break;
      case 'complex':
        assert.ok(v instanceof PyComplex && v.real === w.real && v.imag === w.imag, msg);
        break;
      case 'tuple':
        assert.ok(v instanceof PyTuple && v.items.length === w.items!.length, msg);
        break;
      case undefined:
        assert.ok(v instanceof PyDict && v.size === Object.keys(want as object).length, msg);
        break;
      default:
        assert.ok(v !== undefined, msg);
    }
  }
}

test('reading the malicious fixtures never runs their payload', () => {
  assert.equal(existsSync('/tmp/ckpt-pwned-marker'), false);
});
