// Shared helpers for the pickle VM tests: fixture loading and the expected.json comparator
// (schema in test/fixtures/pickles/generate.py).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CheckpointError } from '../../../../main/errors.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { unpickle, type PickleHooks, type UnpickleResult } from '../../../../main/formats/pickle/unpickler.ts';
import {
  PyBytes,
  PyComplex,
  PyDict,
  PyFloat,
  PyGlobal,
  PyList,
  PyObject,
  PyPersistent,
  PySet,
  PyTuple,
} from '../../../../main/formats/values/python-values.ts';

export const fixtureDir = new URL('../../../fixtures/pickles/', import.meta.url).pathname;

export interface ManifestVector {
  file: string;
  name: string;
  proto: number;
  size: number;
  opcodes: string[];
}
export interface Manifest {
  python: string;
  allOpcodes: { name: string; code: number; proto: number }[];
  vectors: ManifestVector[];
}
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export interface Expected {
  value?: Json;
  error?: { kind: string; match: string };
}

export const manifest: Manifest = JSON.parse(readFileSync(fixtureDir + 'manifest.json', 'utf8')) as Manifest;

/** The vectors the truncation test cuts at every byte (and `npm run bench pickle-vm` times). */
export const TRUNCATE_EVERY_BYTE: readonly string[] = [
  'rich.p1.pkl',
  'rich.p2.pkl',
  'rich.p4.pkl',
  'rich.p5.pkl',
  'ext.p4.pkl',
  'persistent.p0.pkl',
  'persistent.p2.pkl',
  'picklebuffer.p5.pkl',
  'evil_reduce.p0.pkl',
  'evil_reduce.p4.pkl',
  ...manifest.vectors.filter((v) => v.name.startsWith('hand_')).map((v) => v.file),
];

export function vectorBytes(file: string): Uint8Array {
  return new Uint8Array(readFileSync(fixtureDir + file));
}
export function expectedOf(file: string): Expected {
  return JSON.parse(readFileSync(fixtureDir + file.replace(/\.pkl$/, '.expected.json'), 'utf8')) as Expected;
}

export function run(bytes: Uint8Array, hooks?: PickleHooks, name = 'vector.pkl'): UnpickleResult {
  return unpickle(PickleInput.fromBytes(bytes, name), hooks);
}

/** The bytes of a pickle written as a latin-1 string (handy for hand vectors). */
export function b(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

/**
 * Runs `fn` and asserts it throws a CheckpointError of one of `kinds` with a one-line message.
 * Anything else thrown (TypeError, RangeError, ...) fails the test with the original error.
 */
export function expectCheckpointError(fn: () => unknown, kinds: string[], match?: RegExp): CheckpointError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) assert.fail(`expected a CheckpointError (${kinds.join('/')}), but nothing was thrown`);
  if (!(err instanceof CheckpointError)) {
    assert.fail(`expected a CheckpointError (${kinds.join('/')}), got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  assert.ok(kinds.includes(err.kind), `kind ${err.kind} not in ${kinds.join('/')}: ${err.message}`);
  assert.ok(!err.message.includes('\n'), `message is not one line: ${JSON.stringify(err.message)}`);
  if (match) assert.match(err.message, match);
  return err;
}

export function floatHex(x: number): string {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x, false);
  return Buffer.from(dv.buffer).toString('hex');
}

function dataMatches(data: Uint8Array, spec: Json, path: string): void {
  if (typeof spec === 'string') {
    assert.equal(Buffer.from(data).toString('hex'), spec, `${path}: bytes differ`);
  } else {
    const s = spec as { length: number; sha256: string };
    assert.equal(data.length, s.length, `${path}: byte length`);
    assert.equal(createHash('sha256').update(data).digest('hex'), s.sha256, `${path}: sha256`);
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'object';
}

/**
 * Asserts that `actual` (a VM value) matches `expected` (expected.json encoding). `ids` maps
 * `$id` numbers to the JS objects seen at their first occurrence; a `$ref` must be that very object.
 */
export function matchValue(actual: unknown, expected: Json, path = '$', ids = new Map<number, unknown>()): void {
  if (expected === null || typeof expected === 'boolean') {
    assert.equal(actual, expected, `${path}: expected ${String(expected)}, got ${kindOf(actual)}`);
    return;
  }
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${path}: expected int ${expected} as a JS number, got ${kindOf(actual)}`);
    assert.ok(Number.isSafeInteger(actual), `${path}: ${String(actual)} is not a safe integer`);
    assert.ok(Object.is(actual, expected) || (expected === 0 && actual === 0), `${path}: expected ${expected}, got ${String(actual)}`);
    return;
  }
  if (typeof expected === 'string') {
    assert.equal(actual, expected, `${path}: string differs`);
    return;
  }
  if (Array.isArray(expected)) throw new Error(`${path}: bad expected.json (bare array)`);
  const e = expected;
  if ('$ref' in e) {
    assert.ok(ids.has(e.$ref as number), `${path}: $ref ${String(e.$ref)} before its $id`);
    assert.ok(actual === ids.get(e.$ref as number), `${path}: expected the same object as $id ${String(e.$ref)} (shared reference lost)`);
    return;
  }
  if ('$id' in e) ids.set(e.$id as number, actual);
  const items = (arr: unknown[], exp: Json, what: string): void => {
    const want = exp as Json[];
    assert.equal(arr.length, want.length, `${path}: ${what} length`);
    want.forEach((x, i) => matchValue(arr[i], x, `${path}[${i}]`, ids));
  };
  if ('$int' in e) {
    const v = BigInt(e.$int as string);
    if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
      assert.equal(actual, Number(v), `${path}: int`);
    } else {
      assert.equal(typeof actual, 'bigint', `${path}: expected int ${v} as a bigint, got ${kindOf(actual)} ${String(actual)}`);
      assert.equal(actual, v, `${path}: bigint value`);
    }
  } else if ('$float' in e) {
    assert.ok(actual instanceof PyFloat, `${path}: expected PyFloat, got ${kindOf(actual)}`);
    assert.equal(floatHex(actual.value), e.$float, `${path}: float bits (got ${actual.value})`);
  } else if ('$complex' in e) {
    assert.ok(actual instanceof PyComplex, `${path}: expected PyComplex, got ${kindOf(actual)}`);
    const [re, im] = e.$complex as string[];
    assert.equal(floatHex(actual.real), re, `${path}: complex real bits`);
    assert.equal(floatHex(actual.imag), im, `${path}: complex imag bits`);
  } else if ('$bytes' in e || '$bytearray' in e) {
    const mutable = '$bytearray' in e;
    assert.ok(actual instanceof PyBytes, `${path}: expected PyBytes, got ${kindOf(actual)} ${describe(actual)}`);
    assert.equal(actual.mutable, mutable, `${path}: ${mutable ? 'bytearray' : 'bytes'} expected`);
    dataMatches(actual.data, (mutable ? e.$bytearray : e.$bytes)!, path);
  } else if ('$tuple' in e) {
    assert.ok(actual instanceof PyTuple, `${path}: expected PyTuple, got ${kindOf(actual)}`);
    items(actual.items, e.$tuple!, 'tuple');
  } else if ('$list' in e) {
    assert.ok(actual instanceof PyList, `${path}: expected PyList, got ${kindOf(actual)}`);
    items(actual.items, e.$list!, 'list');
  } else if ('$dict' in e || '$odict' in e) {
    const ordered = '$odict' in e;
    assert.ok(actual instanceof PyDict, `${path}: expected PyDict, got ${kindOf(actual)} ${describe(actual)}`);
    assert.equal(actual.ordered, ordered, `${path}: ${ordered ? 'OrderedDict' : 'dict'} expected`);
    const want = (ordered ? e.$odict : e.$dict) as [Json, Json][];
    assert.equal(actual.entries.length, want.length, `${path}: dict size`);
    want.forEach(([k, v], i) => {
      const [ak, av] = actual.entries[i]!;
      matchValue(ak, k, `${path}.key[${i}]`, ids);
      matchValue(av, v, `${path}[${JSON.stringify(k)}]`, ids);
    });
    if ('attrs' in e) matchValue(actual.attrs, e.attrs!, `${path}.attrs`, ids);
    else assert.equal(actual.attrs, null, `${path}: unexpected attrs`);
  } else if ('$set' in e || '$frozenset' in e) {
    const frozen = '$frozenset' in e;
    assert.ok(actual instanceof PySet, `${path}: expected PySet, got ${kindOf(actual)}`);
    assert.equal(actual.frozen, frozen, `${path}: ${frozen ? 'frozenset' : 'set'} expected`);
    const want = (frozen ? e.$frozenset : e.$set) as Json[];
    assert.equal(actual.items.length, want.length, `${path}: set size`);
    const used = new Set<number>();
    for (const w of want) {
      const at = actual.items.findIndex((a, i) => {
        if (used.has(i)) return false;
        try {
          matchValue(a, w, path, new Map(ids));
          return true;
        } catch {
          return false;
        }
      });
      assert.ok(at >= 0, `${path}: set element ${JSON.stringify(w)} missing`);
      used.add(at);
    }
  } else if ('$global' in e) {
    assert.ok(actual instanceof PyGlobal, `${path}: expected PyGlobal, got ${kindOf(actual)}`);
    assert.equal(actual.fullName, e.$global, `${path}: global name`);
  } else if ('$ext' in e) {
    // EXT1/2/4 look a code up in copyreg's extension registry, which a reader does not have
    const name = `copyreg._extension_registry[${String(e.$ext)}]`;
    const g = actual instanceof PyObject && actual.args.length === 0 ? actual.callable : actual;
    assert.ok(g instanceof PyGlobal, `${path}: expected an extension-registry reference, got ${kindOf(actual)}`);
    assert.equal(g.fullName, name, `${path}: extension code`);
  } else if ('$persistent' in e) {
    assert.ok(actual instanceof PyPersistent, `${path}: expected PyPersistent, got ${kindOf(actual)}`);
    matchValue(actual.pid, e.$persistent!, `${path}.pid`, ids);
  } else if ('$obj' in e) {
    assert.ok(actual instanceof PyObject, `${path}: expected PyObject ${String(e.$obj)}, got ${kindOf(actual)} ${describe(actual)}`);
    assert.equal(actual.className, e.$obj, `${path}: class`);
    assert.equal(actual.via, e.via, `${path}: via`);
    items(actual.args, e.args!, 'args');
    if ('kwargs' in e) matchValue(actual.kwargs, e.kwargs!, `${path}.kwargs`, ids);
    else assert.equal(actual.kwargs, null, `${path}: unexpected kwargs`);
    if ('state' in e) matchValue(actual.state, e.state!, `${path}.state`, ids);
    else assert.equal(actual.state, undefined, `${path}: unexpected state`);
    items(actual.listItems, e.listitems ?? [], 'listitems');
    const di = (e.dictitems ?? []) as [Json, Json][];
    assert.equal(actual.dictItems.length, di.length, `${path}: dictitems length`);
    di.forEach(([k, v], i) => {
      matchValue(actual.dictItems[i]![0], k, `${path}.dictitems[${i}].key`, ids);
      matchValue(actual.dictItems[i]![1], v, `${path}.dictitems[${i}].value`, ids);
    });
  } else {
    throw new Error(`${path}: bad expected.json tag ${JSON.stringify(Object.keys(e))}`);
  }
}

function describe(v: unknown): string {
  if (v instanceof PyObject) return `(${v.className} ${v.via} ${v.args.length} args)`;
  if (v instanceof PyGlobal) return `(${v.fullName})`;
  return '';
}

/** dict value by string key (a PyDict from a vector). */
export function entry(d: unknown, key: string): unknown {
  assert.ok(d instanceof PyDict, 'expected a dict');
  const v = d.get(key);
  assert.notEqual(v, undefined, `no key ${key}`);
  return v;
}
