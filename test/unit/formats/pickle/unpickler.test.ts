// The pickle VM against CPython-written (and hand-assembled, Python-validated) vectors in
// test/fixtures/pickles: every value, opcode coverage of protocols 0–5, shared references and
// cycles, malicious recipes kept opaque, and the hooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointError } from '../../../../main/errors.ts';
import { PyBytes, PyDict, PyGlobal, PyList, PyObject, PyPersistent, PyTuple, type PyValue } from '../../../../main/formats/values/python-values.ts';
import { b, entry, expectCheckpointError, expectedOf, manifest, matchValue, run, vectorBytes } from './helpers.ts';

/** Every opcode of pickle protocols 0–5 (CPython 3.8+ pickletools.opcodes), name → byte. */
const ALL_OPCODES: Record<string, number> = {
  INT: 0x49,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  LONG: 0x4c,
  LONG1: 0x8a,
  LONG4: 0x8b,
  STRING: 0x53,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  BINBYTES8: 0x8e,
  BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97,
  READONLY_BUFFER: 0x98,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  UNICODE: 0x56,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE: 0x58,
  BINUNICODE8: 0x8d,
  FLOAT: 0x46,
  BINFLOAT: 0x47,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  APPENDS: 0x65,
  LIST: 0x6c,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  EMPTY_DICT: 0x7d,
  DICT: 0x64,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  POP: 0x30,
  DUP: 0x32,
  MARK: 0x28,
  POP_MARK: 0x31,
  GET: 0x67,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  PUT: 0x70,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  MEMOIZE: 0x94,
  EXT1: 0x82,
  EXT2: 0x83,
  EXT4: 0x84,
  GLOBAL: 0x63,
  STACK_GLOBAL: 0x93,
  REDUCE: 0x52,
  BUILD: 0x62,
  INST: 0x69,
  OBJ: 0x6f,
  NEWOBJ: 0x81,
  NEWOBJ_EX: 0x92,
  PROTO: 0x80,
  STOP: 0x2e,
  FRAME: 0x95,
  PERSID: 0x50,
  BINPERSID: 0x51,
};
const OUT_OF_BAND = ['NEXT_BUFFER', 'READONLY_BUFFER'];

test('fixture manifest lists the full pickletools opcode table', () => {
  assert.equal(manifest.allOpcodes.length, 68);
  const fromPython = Object.fromEntries(manifest.allOpcodes.map((o) => [o.name, o.code]));
  assert.deepEqual(fromPython, ALL_OPCODES);
  assert.ok(manifest.vectors.length >= 30);
});

test('the vectors use every opcode of protocols 0–5 except the out-of-band buffer ones', () => {
  const used = new Set(manifest.vectors.flatMap((v) => v.opcodes));
  const missing = Object.keys(ALL_OPCODES).filter((op) => !used.has(op) && !OUT_OF_BAND.includes(op));
  assert.deepEqual(missing, []);
  // NEXT_BUFFER is there too, in vectors the VM must refuse
  assert.ok(used.has('NEXT_BUFFER'));
});

for (const v of manifest.vectors) {
  const exp = expectedOf(v.file);
  if (exp.error) {
    test(`${v.file}: refused with ${exp.error.kind}`, () => {
      const err = expectCheckpointError(() => run(vectorBytes(v.file), {}, v.file), [exp.error!.kind], new RegExp(exp.error!.match));
      assert.match(err.message, /out-of-band/);
      assert.ok(err.message.startsWith(v.file), 'message names the file');
    });
    continue;
  }
  test(`${v.file}: value matches what Python pickled (${v.opcodes.length} opcodes)`, () => {
    const r = run(vectorBytes(v.file), {}, v.file);
    matchValue(r.value, exp.value!);
    assert.equal(r.protocol, v.opcodes.includes('PROTO') ? v.proto : 0);
  });
}

test('NEXT_BUFFER alone, and after other data, is a clear bad-pickle error', () => {
  expectCheckpointError(() => run(b('\x80\x05\x97.')), ['bad-pickle'], /NEXT_BUFFER.*out-of-band/);
  expectCheckpointError(() => run(b('\x80\x05](K\x01\x97e.')), ['bad-pickle'], /NEXT_BUFFER/);
});

// ---------------------------------------------------------------- identity and cycles

for (const proto of [0, 1, 2, 3, 4, 5]) {
  test(`rich.p${proto}: shared references are one JS object, cycles close on themselves`, () => {
    const d = run(vectorBytes(`rich.p${proto}.pkl`)).value;
    // a dict referenced twice (early memo slot, BINGET / text GET)
    assert.ok(entry(d, 'shared_a') === entry(d, 'shared_b'));
    // a list referenced twice after more than 256 memo entries (LONG_BINGET from protocol 1)
    assert.ok(entry(d, 'late') === entry(d, 'late_again'));
    // the same object instance twice
    const p = entry(d, 'point');
    assert.ok(p instanceof PyObject && p === entry(d, 'point_again'));
    // l = ['head']; l.append(l)
    const l = entry(d, 'rec_list');
    assert.ok(l instanceof PyList && l.items[1] === l);
    // t = ([],); t[0].append(t): the inner reference is the outer tuple (POP / POP_MARK + GET)
    const t = entry(d, 'rec_tuple');
    assert.ok(t instanceof PyTuple);
    const inner = t.items[0];
    assert.ok(inner instanceof PyList && inner.items.length === 1 && inner.items[0] === t);
  });
}

test('DUP makes the same object, not a copy', () => {
  const v = run(b(']2a.')).value;
  assert.ok(v instanceof PyList && v.items[0] === v);
});

// ---------------------------------------------------------------- malicious vectors

for (const file of ['evil_reduce.p0.pkl', 'evil_reduce.p2.pkl', 'evil_reduce.p4.pkl', 'evil_classic.p0.pkl']) {
  test(`${file}: os.system is returned as an opaque recipe, never run`, () => {
    const r = run(vectorBytes(file));
    const v = r.value;
    assert.ok(v instanceof PyObject);
    assert.ok(v.callable instanceof PyGlobal);
    assert.ok(['os.system', 'posix.system'].includes(v.className), v.className);
    assert.equal(v.via, 'reduce');
    assert.deepEqual(v.args, ['echo pwned > /tmp/pwned']);
    const g = r.globals.get(v.className);
    assert.deepEqual(g && { ...g }, { module: v.callable.module, name: 'system', calls: 1 });
  });
}

test('evil_eval.p2.pkl: builtins.eval is recorded as a called global and kept opaque', () => {
  const r = run(vectorBytes('evil_eval.p2.pkl'));
  assert.ok(r.value instanceof PyObject && r.value.className === 'builtins.eval');
  assert.equal(r.globals.get('builtins.eval')?.calls, 1);
});

test('globals: every referenced name is listed, with how often it was called', () => {
  const r = run(vectorBytes('rich.p2.pkl'));
  const names = [...r.globals.keys()];
  for (const n of [
    'builtins.set',
    'builtins.frozenset',
    'builtins.complex',
    'collections.OrderedDict',
    'builtins.len',
    '__main__.Point',
    '__main__.make_bag',
  ]) {
    assert.ok(names.includes(n), `${n} missing from ${names.join(', ')}`);
  }
  assert.equal(r.globals.get('builtins.len')!.calls, 0);
  assert.equal(r.globals.get('__main__.make_bag')!.calls, 1);
  // Python 2 module names are mapped the way Python 3 maps them
  assert.ok(!names.some((n) => n.startsWith('__builtin__.') || n.startsWith('copy_reg.')));
});

// ---------------------------------------------------------------- hooks

test('persistentLoad hook gets every persistent id (PERSID text and BINPERSID)', () => {
  for (const [file, want] of [
    ['persistent.p0.pkl', ['key-a', 'key-b', 'key-a']],
    ['persistent.p2.pkl', ['key-a', 'key-b', 'key-a']],
  ] as const) {
    const seen: PyValue[] = [];
    const r = run(vectorBytes(file), {
      persistentLoad: (pid) => {
        seen.push(pid);
        return `loaded:${seen.length}`;
      },
    });
    const keys = seen.map((pid) => (typeof pid === 'string' ? pid : pid instanceof PyTuple ? pid.items[1] : '?'));
    assert.deepEqual(keys, want, file);
    assert.equal(entry(r.value, 'weights'), 'loaded:1');
    assert.equal(entry(r.value, 'again'), 'loaded:3');
  }
  const r = run(vectorBytes('persistent.p1.pkl'));
  assert.ok(entry(r.value, 'bias') instanceof PyPersistent);
});

test('call hook can interpret a callable; BUILD hook replacement reaches memo references', () => {
  const marker = new PyTuple(['built point']);
  const calls: string[] = [];
  const r = run(vectorBytes('rich.p2.pkl'), {
    call: (fn, args, via) => {
      if (fn instanceof PyGlobal) calls.push(`${fn.fullName}/${via}/${args.length}`);
      return fn instanceof PyGlobal && fn.fullName === '__main__.make_bag' ? new PyObject(new PyGlobal('hooked', 'Bag'), [...args], 'reduce') : undefined;
    },
    build: (target, state) => {
      if (target instanceof PyObject && target.className === '__main__.Point') {
        assert.ok(state instanceof PyDict);
        return marker;
      }
      return undefined;
    },
  });
  assert.ok(calls.includes('__main__.Point/newobj/0'), calls.join(' '));
  assert.ok(calls.includes('__main__.make_bag/reduce/3'), calls.join(' '));
  assert.ok(entry(r.value, 'point') === marker);
  assert.ok(entry(r.value, 'point_again') === marker, 'BINGET after BUILD sees the replacement');
  const recipe = entry(r.value, 'recipe');
  assert.ok(recipe instanceof PyObject && recipe.className === 'hooked.Bag', 'hooked call result is used');
  assert.deepEqual(recipe.args.slice(0, 2), [1, 'two']);
  assert.deepEqual(recipe.listItems, [10, 'eleven'], 'APPENDS go onto the hooked value');
  assert.deepEqual(
    recipe.dictItems.map(([k]) => k),
    ['k1', 2],
    'SETITEMS go onto the hooked value',
  );
  assert.ok(recipe.state instanceof PyDict && recipe.state.has('state_key'), 'BUILD goes onto the hooked value');
});

test('BUILD hook returning true leaves the target in place', () => {
  const r = run(vectorBytes('rich.p4.pkl'), { build: () => true });
  const p = entry(r.value, 'point');
  assert.ok(p instanceof PyObject && p.state === undefined);
});

// ---------------------------------------------------------------- reading in chunks

test('large strings and bytes straddling the 64 KiB read chunks', () => {
  // protocol 4 without frames: 20 000 short strings in APPENDS batches, and bytes objects of
  // exactly 64 KiB, 64 KiB + 1 and 1 byte at odd offsets
  const parts: Buffer[] = [Buffer.from('\x80\x04]', 'latin1')];
  const want: string[] = [];
  for (let batch = 0; batch < 20; batch++) {
    parts.push(Buffer.from('(', 'latin1'));
    for (let i = 0; i < 1000; i++) {
      const s = `item-${batch}-${i}-\u00e9`;
      want.push(s);
      const u = Buffer.from(s, 'utf8');
      parts.push(Buffer.from([0x8c, u.length]), u);
    }
    parts.push(Buffer.from('e', 'latin1'));
  }
  const sizes = [65536, 65537, 1, 65535];
  for (const n of sizes) {
    const head = Buffer.alloc(5);
    head[0] = 0x42; // BINBYTES
    head.writeUInt32LE(n, 1);
    const data = Buffer.alloc(n, n & 0xff);
    data[0] = 0xaa;
    data[n - 1] = 0xbb;
    parts.push(head, data, Buffer.from('a', 'latin1'));
  }
  parts.push(Buffer.from('.', 'latin1'));
  const bytes = new Uint8Array(Buffer.concat(parts));
  assert.ok(bytes.length > 4 * 65536);
  const v = run(bytes).value;
  assert.ok(v instanceof PyList);
  assert.deepEqual(v.items.slice(0, want.length), want);
  sizes.forEach((n, i) => {
    const x = v.items[want.length + i];
    assert.ok(x instanceof PyBytes && x.data.length === n);
    assert.equal(x.data[0], n === 1 ? 0xbb : 0xaa);
    assert.equal(x.data[n - 1], 0xbb);
    if (n > 2) assert.equal(x.data[1], n & 0xff);
  });
});

test('bytes values are copies, not views into the input', () => {
  const bytes = b('\x80\x03C\x03abc.');
  const v = run(bytes).value;
  assert.ok(v instanceof PyBytes);
  bytes[4] = 0x7a;
  assert.equal(Buffer.from(v.data).toString('latin1'), 'abc');
});

test('errors are CheckpointError with the file name', () => {
  const e = expectCheckpointError(() => run(b('\x80\x02]q\x00h\x05.'), {}, 'model.pkl'), ['bad-pickle']);
  assert.ok(e instanceof CheckpointError && e.file === 'model.pkl');
  assert.match(e.message, /^model\.pkl: /);
});
