// Every fixture written by real torch 2.x (test/fixtures/generate_torch2.py) is read by the engine
// and compared value by value with what torch itself saw (the .expected.json beside each file).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { expectationFiles } from '../../../helpers/expectations.ts';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../../../main/inputs/open-checkpoint.ts';
import { findRoles } from '../../../../main/checkpoint/roles.ts';
import { classifyGlobal } from '../../../../main/checkpoint/security.ts';
import { readTensorBytes } from '../../../../main/checkpoint/tensor-bytes.ts';
import { valueAt, type PathKey } from '../../../../main/checkpoint/tree.ts';
import { CheckpointError } from '../../../../main/errors.ts';
import { openFormat } from '../../../../main/formats/open-format.ts';
import { FileReader } from '../../../../main/io/random-access.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';
import { deviceText } from '../../../../main/formats/torch/torch-pickle.ts';
import { TorchTensor } from '../../../../main/formats/values/torch-values.ts';
import {
  PyBytes,
  PyComplex,
  PyDict,
  PyFloat,
  PyGlobal,
  PyList,
  PyObject,
  PySet,
  PyTuple,
  type PyValue,
} from '../../../../main/formats/values/python-values.ts';
import { isNumpyScalar, numpyScalarValue } from '../../../../main/formats/numpy/numpy-values.ts';
import { dtypeByName } from '../../../../shared/dtypes.ts';

const dir = new URL('../../../fixtures/torch2/', import.meta.url).pathname;

interface TensorExp {
  path: PathKey[];
  dtype: string;
  shape: number[];
  stride: number[];
  storage_offset: number;
  device: string;
  requires_grad: boolean;
  is_parameter: boolean;
  sha256: string | null;
  storage_id: number | null;
  storage_nbytes: number | null;
  class?: string;
  state_tensors?: TensorExp[];
  local_path?: PathKey[];
  placements?: string[];
  global_offset?: number[];
  local_shards?: { path: PathKey[]; offsets: number[]; sizes: number[] }[];
}
interface WeightsOnly {
  default: boolean;
  after_import_distributed_tensor: boolean;
  with_numpy_safe_globals?: boolean;
  per_key?: Record<string, { loads: boolean; globals: string[] }>;
}
interface Expected {
  fixture: string;
  file: string;
  format: string;
  layout: string;
  prefixes: string[];
  tensors: TensorExp[];
  metadata_keys?: string[];
  metadata_path?: PathKey[];
  scalars?: Record<string, unknown>;
  globals: string[];
  records: Record<string, string>;
  archive_prefix: string;
  zip_entries: string[];
  weights_only: WeightsOnly;
}
interface FullExp {
  kind: 'full';
  fixture: string;
  files: string[];
  tensors: { key: string; dtype: string; shape: number[]; sharded: boolean; sha256: string }[];
}
interface DcpExp {
  kind: 'dcp';
  metadata_file: string;
  data_files: string[];
  metadata_class: string;
  globals: string[];
  items: Record<string, unknown>;
  storage: { fqn: string; relative_path: string; file_offset: number; length: number }[];
}

const files = expectationFiles(dir);
test('the torch 2.x fixture generator has written the fixtures', () => {
  assert.ok(files.length >= 14, `expected at least 14 expectation files, found ${files.length}`);
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const key = (p: PathKey[]): string => JSON.stringify(p);
const builtinName = (g: string): string => g.replace(/^__builtin__\./, 'builtins.').replace(/^builtins\.xrange$/, 'builtins.range');

/** One aspect of a fixture, as its own subtest. */
function aspect(t: TestContext, _file: string, name: string, fn: () => void): Promise<void> {
  return t.test(name, fn);
}

/** Compares one tensor the engine read with torch's description of it (plain tensors only). */
function checkPlain(tt: TorchTensor, e: TensorExp, where: string): void {
  assert.equal(tt.dtype.name, e.dtype, `${where} dtype`);
  assert.deepEqual(tt.shape, e.shape, `${where} shape`);
  assert.deepEqual(tt.stride, e.stride, `${where} stride`);
  assert.equal(tt.storageOffset, e.storage_offset, `${where} offset`);
  assert.equal(tt.device, e.device, `${where} device`);
  assert.equal(tt.requiresGrad, e.requires_grad, `${where} requires_grad`);
  assert.equal(tt.isParameter, e.is_parameter, `${where} is_parameter`);
  assert.equal(tt.subclass, null, `${where} is a plain tensor`);
  assert.ok(tt.storage, `${where} has a storage`);
  assert.equal((tt.storage.viewOf ?? tt.storage).nbytes, e.storage_nbytes, `${where} storage size`);
  assert.equal(sha(readTensorBytes(tt)), e.sha256, `${where} value checksum`);
}

for (const expFile of files) {
  const raw = JSON.parse(readFileSync(expFile, 'utf8')) as { kind?: string };
  if (raw.kind === 'full') fullTest(raw as FullExp);
  else if (raw.kind === 'dcp') dcpTest(raw as DcpExp);
  else fixtureTest(raw as Expected);
}

function fixtureTest(exp: Expected): void {
  const f = exp.file;
  const ckptFile = join(dir, f);
  test(`torch 2.x fixture ${f}: engine reading equals torch's`, async (t) => {
    assert.ok(existsSync(ckptFile));
    const c = openCheckpoint(ckptFile);
    try {
      const r = c.report;
      await aspect(t, f, 'format, records and zip entries', () => {
        assert.equal(r.format, exp.format);
        for (const [k, v] of Object.entries(exp.records)) assert.equal(r.records[k], v, `record ${k}`);
        assert.equal(r.records['archive'], exp.archive_prefix);
        const reader = new FileReader(ckptFile);
        try {
          assert.deepEqual(
            ZipArchive.open(reader).entries.map((e) => e.name),
            exp.zip_entries,
          );
        } finally {
          reader.close();
        }
      });
      await aspect(t, f, 'layout', () => {
        assert.equal(r.layout.kind, exp.layout, `layout evidence: ${r.layout.evidence.join('; ')}`);
        assert.deepEqual(r.layout.prefixes, exp.prefixes);
      });
      const ours = new Map(c.tensors.map((x) => [key(x.path), x.tensor]));
      await aspect(t, f, 'tensors', () => {
        assert.equal(c.tensors.length, exp.tensors.length, `tensor count; ours: ${[...ours.keys()].join(' ')}`);
        const storageIds = new Map<number, object>();
        const share = (id: number | null, tt: TorchTensor, where: string): void => {
          if (id === null) return;
          const root = tt.storage!.viewOf ?? tt.storage!;
          const prev = storageIds.get(id);
          if (prev) assert.equal(prev, root, `${where} should share storage ${id}`);
          else storageIds.set(id, root);
        };
        for (const e of exp.tensors) {
          const where = key(e.path);
          const tt = ours.get(where);
          assert.ok(tt, `tensor at ${where} missing`);
          if (!e.class) {
            checkPlain(tt, e, where);
            share(e.storage_id, tt, where);
            continue;
          }
          // a tensor subclass: the wrapper has the global metadata and no storage of its own
          assert.equal(tt.subclass, e.class, `${where} class`);
          assert.equal(tt.dtype.name, e.dtype, `${where} dtype`);
          assert.deepEqual(tt.shape, e.shape, `${where} global shape`);
          assert.deepEqual(tt.stride, e.stride, `${where} stride`);
          assert.equal(tt.storageOffset, e.storage_offset, `${where} offset`);
          assert.equal(tt.device, e.device, `${where} device`);
          assert.equal(tt.requiresGrad, e.requires_grad, `${where} requires_grad`);
          assert.equal(tt.storage, null, `${where} wrapper has no storage`);
          for (const s of e.state_tensors ?? []) {
            const inner = valueAt(tt.pyState ?? null, s.path);
            assert.ok(inner instanceof TorchTensor, `${where} state ${key(s.path)} is a tensor`);
            checkPlain(inner, s, `${where} state ${key(s.path)}`);
            share(s.storage_id, inner, `${where} state ${key(s.path)}`);
          }
        }
        assert.equal(new Set(storageIds.values()).size, storageIds.size, 'distinct storages stay distinct');
      });
      const subclassed = exp.tensors.filter((e) => e.class);
      if (subclassed.length) {
        await aspect(t, f, 'shard roles', () => {
          const roles = findRoles(c.reading.root).filter((x) => x.kind === 'shard');
          const got = new Set(roles.map((x) => key(x.path)));
          for (const e of subclassed)
            assert.ok(
              got.has(key(e.path)),
              `a 'shard' role at ${key(e.path)} (${e.class}); roles found: ${c.roles.map((x) => `${x.kind}@${key(x.path)}`).join(' ')}`,
            );
          for (const x of roles) assert.equal(x.className, subclassed.find((e) => key(e.path) === key(x.path))?.class);
        });
      }
      if (exp.metadata_keys) {
        await aspect(t, f, 'state dict _metadata', () => {
          const sd = valueAt(c.reading.root, exp.metadata_path ?? []);
          assert.ok(sd instanceof PyDict && sd.attrs, 'state dict carries _metadata');
          const meta = sd.attrs.get('_metadata');
          assert.ok(meta instanceof PyDict);
          assert.deepEqual(
            meta.entries.map(([k]) => k),
            exp.metadata_keys,
          );
        });
      }
      if (exp.scalars && Object.keys(exp.scalars).length) {
        await aspect(t, f, 'non-tensor values', () => {
          for (const [dotted, want] of Object.entries(exp.scalars!)) {
            checkScalar(dotted, valueAt(c.reading.root, dotted.split('.')), want);
          }
        });
      }
      await aspect(t, f, 'globals reported', () => {
        const gl = new Set(r.security.globals.map((g) => g.name));
        for (const g of exp.globals) assert.ok(gl.has(g) || gl.has(builtinName(g)), `global ${g} reported; ours: ${[...gl].join(' ')}`);
      });
      await aspect(t, f, 'security verdict agrees with torch.load(weights_only=True)', () => {
        const wo = exp.weights_only;
        const bad = r.security.globals.filter((g) => g.class !== 'safe').map((g) => `${g.name} (${g.class})`);
        if (wo.default) {
          assert.equal(r.security.verdict, 'safe', `torch 2.x loads this with weights_only=True; not safe here: ${bad.join(', ')}`);
          assert.equal(r.security.weightsOnlyLoadable, true);
        } else {
          assert.notEqual(r.security.verdict, 'safe', 'torch 2.x refuses this with weights_only=True');
          assert.equal(r.security.weightsOnlyLoadable, false);
        }
      });
      await aspect(t, f, 'not flagged dangerous', () => {
        const bad = r.security.globals.filter((g) => g.class === 'dangerous').map((g) => `${g.name}: ${g.reason}`);
        assert.notEqual(r.security.verdict, 'dangerous', `a file torch itself wrote from tensors and plain data; flagged: ${bad.join(', ')}`);
      });
      for (const [k, p] of Object.entries(exp.weights_only.per_key ?? {})) {
        await aspect(t, f, `weights_only per key: ${k}`, () => {
          const classes = p.globals.map((g) => {
            const name = builtinName(g);
            const i = name.lastIndexOf('.');
            return { g, cls: classifyGlobal(name.slice(0, i), name.slice(i + 1)).cls };
          });
          const notSafe = classes.filter((x) => x.cls !== 'safe');
          if (p.loads) assert.deepEqual(notSafe, [], `torch 2.x weights_only loads '${k}', whose globals are ${p.globals.join(', ') || '(none)'}`);
          else assert.ok(notSafe.length > 0, `torch 2.x weights_only refuses '${k}', yet every global is 'safe' here: ${p.globals.join(', ')}`);
        });
      }
    } finally {
      c.close();
    }
  });
}

/** The per-rank shards, read by the engine, joined along dim 0, give torch's full tensors. */
function fullTest(exp: FullExp): void {
  const label = exp.files[0]!.replace(/\/[^/]*$/, '/full.expected.json');
  test(`torch 2.x ${label}: rank shards read by the engine join into the full tensors`, async (t) => {
    const ranks = exp.files.map((f) => ({
      exp: JSON.parse(readFileSync(join(dir, f.replace(/\.pt$/, '.expected.json')), 'utf8')) as Expected,
      c: openCheckpoint(join(dir, f)),
    }));
    try {
      for (const e of exp.tensors) {
        await aspect(t, label, e.key, () => {
          const parts: { offset: number; bytes: Uint8Array }[] = [];
          for (const { exp: rexp, c } of ranks) {
            const te = rexp.tensors.find((x) => key(x.path) === key([e.key]));
            assert.ok(te, `${e.key} in ${rexp.file}`);
            const tt = c.tensors.find((x) => key(x.path) === key([e.key]))?.tensor;
            assert.ok(tt, `engine finds ${e.key} in ${rexp.file}`);
            if (!e.sharded) {
              assert.equal(sha(readTensorBytes(tt)), e.sha256, `${e.key} (replicated) in ${rexp.file}`);
              continue;
            }
            assert.deepEqual(tt.shape, e.shape, `${e.key} global shape in ${rexp.file}`);
            const locals = te.local_path
              ? [{ path: te.local_path, offsets: te.global_offset! }]
              : (te.local_shards ?? []).map((s) => ({ path: s.path, offsets: s.offsets }));
            for (const l of locals) {
              assert.ok(
                l.offsets.slice(1).every((o) => o === 0),
                'fixtures shard along dim 0 only',
              );
              const inner = valueAt(tt.pyState ?? null, l.path);
              assert.ok(inner instanceof TorchTensor, `${e.key} local tensor at ${key(l.path)} in ${rexp.file}`);
              assert.deepEqual(inner.shape.slice(1), e.shape.slice(1));
              parts.push({ offset: l.offsets[0]!, bytes: readTensorBytes(inner) });
            }
          }
          if (!e.sharded) return;
          parts.sort((a, b) => a.offset - b.offset);
          const h = createHash('sha256');
          for (const p of parts) h.update(p.bytes);
          assert.equal(h.digest('hex'), e.sha256, `${e.key}: shards joined in offset order`);
        });
      }
    } finally {
      for (const r of ranks) r.c.close();
    }
  });
}

/** DCP folders are a later task: the `.metadata` file must read as a bare pickle or fail cleanly. */
function dcpTest(exp: DcpExp): void {
  test(`torch 2.x DCP ${exp.metadata_file}: read as a bare pickle or refused with a typed error`, async (t) => {
    let outcome = '';
    try {
      const reading = openFormat(join(dir, exp.metadata_file));
      try {
        assert.equal(reading.format, 'pickle');
        outcome = `format 'pickle', root ${reading.root instanceof PyObject ? reading.root.className : typeof reading.root}`;
        await aspect(t, exp.metadata_file, 'metadata pickle contents', () => {
          const root = reading.root;
          assert.ok(root instanceof PyObject, 'root is an object');
          assert.equal(root.className, exp.metadata_class);
          const sdm = valueAt(root, ['state_dict_metadata']);
          assert.ok(sdm instanceof PyDict, 'state_dict_metadata is a dict');
          assert.deepEqual(sdm.entries.map(([k]) => k).sort(), Object.keys(exp.items).sort());
          const gl = new Set(reading.globals.map((g) => `${g.module}.${g.name}`));
          for (const g of exp.globals) assert.ok(gl.has(g), `global ${g} reported`);
        });
      } finally {
        reading.close();
      }
    } catch (e) {
      assert.ok(e instanceof CheckpointError, `a typed CheckpointError, not ${String(e)}`);
      outcome = `CheckpointError(${e.kind}): ${e.message}`;
    }
    t.diagnostic(`.metadata: ${outcome}`);
    try {
      const c = openCheckpoint(join(dir, exp.metadata_file));
      const sec = c.report.security;
      t.diagnostic(
        `.metadata security verdict: ${sec.verdict} (${
          sec.globals
            .filter((g) => g.class === 'dangerous')
            .map((g) => `${g.name}: ${g.reason}`)
            .join('; ') || 'nothing dangerous'
        }) (not asserted)`,
      );
      c.close();
    } catch {
      // reported above
    }
    // Each .distcp holds one torch.save archive per item, back to back: reading it as a single
    // checkpoint is fine only if nothing is lost; refusing it with a typed error is fine too.
    for (const data of exp.data_files) {
      const items = exp.storage.filter((s) => `dcp/${s.relative_path}` === data && (exp.items[s.fqn] as { type: string }).type === 'tensor').length;
      await aspect(t, data, 'not silently read as one item', () => {
        let c;
        try {
          c = openCheckpoint(join(dir, data));
        } catch (e) {
          assert.ok(e instanceof CheckpointError, `${data}: a typed CheckpointError, not ${String(e)}`);
          t.diagnostic(`${data}: CheckpointError(${e.kind}): ${e.message}`);
          return;
        }
        try {
          t.diagnostic(`${data}: read as '${c.report.format}' with ${c.tensors.length} tensor(s); .metadata places ${items} tensor item(s) in it`);
          assert.equal(c.tensors.length, items, `${data}: tensors read vs tensor items .metadata places in it`);
        } finally {
          c.close();
        }
      });
    }
  });
}

/** Compares one non-tensor leaf with the generator's JSON encoding of the Python value. */
function checkScalar(dotted: string, v: PyValue | undefined, want: unknown): void {
  const msg = `value at ${dotted}`;
  if (v !== undefined && isNumpyScalar(v as PyObject)) v = numpyScalarValue(v as PyObject) as PyValue;
  if (typeof want === 'number') {
    if (v instanceof PyFloat) assert.equal(v.value, want, msg);
    else assert.equal(v, want, msg);
    return;
  }
  if (typeof want === 'string' || typeof want === 'boolean' || want === null) {
    assert.equal(v, want, msg);
    return;
  }
  if (Array.isArray(want)) {
    assert.ok(v instanceof PyList && v.items.length === want.length, msg);
    return;
  }
  const w = want as { $type?: string; value?: unknown; hex?: string; items?: unknown; real?: number; imag?: number; dtype?: string; shape?: number[] };
  switch (w.$type) {
    case 'int':
      assert.equal(String(v), w.value, msg);
      break;
    case 'bytes':
      assert.ok(v instanceof PyBytes && !v.mutable && Buffer.from(v.data).toString('hex') === w.hex, msg);
      break;
    case 'bytearray':
      assert.ok(v instanceof PyBytes && v.mutable && Buffer.from(v.data).toString('hex') === w.hex, msg);
      break;
    case 'set':
      assert.ok(v instanceof PySet && !v.frozen && v.items.length === (w.items as unknown[]).length, msg);
      break;
    case 'frozenset':
      assert.ok(v instanceof PySet && v.frozen && v.items.length === (w.items as unknown[]).length, msg);
      break;
    case 'complex':
      assert.ok(v instanceof PyComplex && v.real === w.real && v.imag === w.imag, msg);
      break;
    case 'tuple':
      assert.ok(v instanceof PyTuple && v.items.length === (w.items as unknown[]).length, msg);
      break;
    case 'numpy_scalar':
      assert.equal(Number(v), w.value as number, msg);
      break;
    case 'torch.device':
      assert.equal(deviceText(v), w.value, msg);
      break;
    case 'torch.dtype':
      assert.ok(v instanceof PyGlobal && v.module === 'torch' && dtypeByName(v.name)?.name === w.value, msg);
      break;
    case 'torch.layout':
      assert.ok(v instanceof PyObject && v.args[0] === `torch.${String(w.value)}`, msg);
      break;
    case 'torch.Size': {
      assert.ok(v instanceof PyObject && v.className === 'torch.Size', msg);
      const items = v.args[0];
      assert.ok(items instanceof PyTuple);
      assert.deepEqual(items.items, w.value, msg);
      break;
    }
    case undefined:
      assert.ok(v instanceof PyDict && v.size === Object.keys(want as object).length, msg);
      break;
    default:
      assert.ok(v !== undefined, msg); // ndarray, Counter, slice, range, class: present
  }
}
