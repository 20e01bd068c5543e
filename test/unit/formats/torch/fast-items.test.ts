// The item reader (main/formats/torch/fast-items.ts) against the general VM: on real torch 1.13
// and 2.13 files the two give the same objects (value by value, with the same sharing), the same
// globals, opcodes and security scan; and where an item leaves the grammar at any opcode, the
// VM's result (or its error) is what comes out.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CheckpointError } from '../../../../main/errors.ts';
import { PickleInput } from '../../../../main/formats/pickle/pickle-input.ts';
import { PickleScanner } from '../../../../main/formats/pickle/scan/scan-pickle.ts';
import type { UnpickleResult } from '../../../../main/formats/pickle/unpickler.ts';
import { TensorItemReader } from '../../../../main/formats/torch/fast-items.ts';
import type { StorageId } from '../../../../main/formats/torch/torch-pickle.ts';
import {
  isTorchArchive,
  openTorchArchive,
  PrescannedPickles,
  StorageTable,
  unpickleRecord,
  unpickleTorchPickle,
} from '../../../../main/formats/torch/torch-zip.ts';
import { TorchStorage } from '../../../../main/formats/values/torch-values.ts';
import { BufferReader, FileReader } from '../../../../main/io/random-access.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';

const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const FAST_ITEMS = ['fast-items/state_1_13.pt', 'fast-items/state_2_13.pt'];

/**
 * Asserts that `a` and `b` are the same graph: equal leaves, objects of the same class with the
 * same fields, and the same sharing (two references to one object in `a` are two references to
 * one object in `b`, and the reverse).
 */
function assertSameGraph(a: unknown, b: unknown): void {
  // a storage's `serial` counts every storage the process made: the two graphs' may differ by a constant
  let serialShift: number | undefined;
  const aToB = new Map<object, object>();
  const bToA = new Map<object, object>();
  const pairs: [unknown, unknown, string][] = [[a, b, '$']];
  while (pairs.length) {
    const [x, y, path] = pairs.pop()!;
    if (typeof x !== 'object' || x === null || typeof y !== 'object' || y === null) {
      if (typeof x === 'function' && typeof y === 'function') continue; // closures of the reader
      assert.equal(x, y, path);
      continue;
    }
    const seen = aToB.get(x);
    if (seen !== undefined || bToA.has(y)) {
      assert.ok(seen === y && bToA.get(y) === x, `${path}: shared differently`);
      continue;
    }
    aToB.set(x, y);
    bToA.set(y, x);
    assert.equal(Object.getPrototypeOf(x), Object.getPrototypeOf(y), `${path}: class`);
    if (ArrayBuffer.isView(x)) {
      assert.deepEqual(x, y, path);
      continue;
    }
    if (x instanceof Map && y instanceof Map) {
      assert.equal(x.size, y.size, `${path}: size`);
      const ys = [...y.entries()];
      [...x.entries()].forEach(([k, v], i) => pairs.push([k, ys[i]![0], `${path}.key${i}`], [v, ys[i]![1], `${path}.get(${String(k)})`]));
      continue;
    }
    const keys = Object.keys(x);
    assert.deepEqual(keys, Object.keys(y), `${path}: fields`);
    for (const k of keys) {
      const xv: unknown = (x as Record<string, unknown>)[k];
      const yv: unknown = (y as Record<string, unknown>)[k];
      if (x instanceof TorchStorage && k === 'serial')
        assert.equal((xv as number) - (yv as number), (serialShift ??= (xv as number) - (yv as number)), `${path}.serial`);
      else pairs.push([xv, yv, `${path}.${k}`]);
    }
  }
}

/** Runs `fn`, counting the items every `TensorItemReader` takes meanwhile. */
function countingItems<T>(fn: () => T): { value: T; taken: number } {
  const original = TensorItemReader.prototype.read;
  let taken = 0;
  TensorItemReader.prototype.read = function (this: TensorItemReader, ...args: Parameters<TensorItemReader['read']>) {
    const before = this.taken;
    const after = original.apply(this, args);
    taken += this.taken - before;
    return after;
  };
  try {
    return { value: fn(), taken };
  } finally {
    TensorItemReader.prototype.read = original;
  }
}

/** Reads `file`'s data.pkl both ways, and counts the items the reader took. */
function bothWays(file: string): { fast: UnpickleResult; vm: UnpickleResult; fastScans: PrescannedPickles; vmScans: PrescannedPickles; taken: number } {
  const archive = openTorchArchive(new FileReader(file));
  const fastScans = new PrescannedPickles();
  const vmScans = new PrescannedPickles();
  const { value: fast, taken } = countingItems(() => unpickleRecord(archive, 'data.pkl', new StorageTable(), 'data/', fastScans, true));
  const vm = unpickleRecord(archive, 'data.pkl', new StorageTable(), 'data/', vmScans, false);
  archive.zip.reader.close();
  return { fast, vm, fastScans, vmScans, taken };
}

function assertSameResult(fast: UnpickleResult, vm: UnpickleResult): void {
  assertSameGraph(fast.value, vm.value);
  assert.deepEqual([...fast.globals.entries()], [...vm.globals.entries()]);
  assert.equal(fast.protocol, vm.protocol);
  assert.deepEqual(fast.opcodes, vm.opcodes);
}

describe('fast items on real torch.save files', () => {
  for (const name of FAST_ITEMS) {
    it(`${name}: the same objects, globals, opcodes and scan as the VM, most items read fast`, () => {
      const { fast, vm, fastScans, vmScans, taken } = bothWays(fixtures + name);
      assertSameResult(fast, vm);
      const zip = ZipArchive.open(new FileReader(fixtures + name));
      const entry = zip.entries.find((e) => e.name.endsWith('/data.pkl'))!;
      assert.ok(vmScans.get(entry), 'the VM made the scan');
      assert.deepEqual(fastScans.get(entry), vmScans.get(entry));
      zip.reader.close();
      // 1,122 items and the module's 4; the first item, which names the globals, a new storage
      // class (5 of them), the non-ASCII key, the Parameter and what follows its GLOBAL are the VM's
      assert.ok(taken >= 1100 && taken < 1126, `${taken} items read fast`);
    });
  }

  const others = ['torch', 'torch2'].flatMap((dir) =>
    readdirSync(fixtures + dir)
      .filter((f) => f.endsWith('.pt'))
      .map((f) => `${dir}/${f}`),
  );
  it(`the fixtures of torch/ and torch2/ (${others.length} files): the same results both ways`, () => {
    let zips = 0;
    for (const name of others) {
      const reader = new FileReader(fixtures + name);
      let zip: ZipArchive;
      try {
        zip = ZipArchive.open(reader);
      } catch {
        reader.close(); // the legacy format: not a zip
        continue;
      }
      const torchZip = isTorchArchive(zip) && zip.entries.some((e) => e.name.endsWith('/data.pkl'));
      reader.close();
      if (!torchZip) continue;
      zips++;
      const { fast, vm, fastScans, vmScans } = bothWays(fixtures + name);
      assertSameResult(fast, vm);
      assert.deepEqual(fastScans, vmScans, name);
    }
    assert.ok(zips >= 15, `${zips} torch zip fixtures`);
  });
});

// ---- fallback: a pickle edited inside one item

const dataPkl = (() => {
  const zip = ZipArchive.open(new FileReader(fixtures + FAST_ITEMS[0]));
  const bytes = zip.readPickleRecord(zip.entries.find((e) => e.name.endsWith('/data.pkl'))!);
  zip.reader.close();
  return new Uint8Array(bytes);
})();

/** Where each opcode starts, for the opcodes torch.save's protocol 2 writes (CPython Lib/pickletools.py). */
function opcodeStarts(b: Uint8Array): number[] {
  const starts: number[] = [];
  const u32 = (at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  for (let p = 0; p < b.length; ) {
    starts.push(p);
    const op = b[p++]!;
    if (op === 0x2e) break;
    if (op === 0x80 || op === 0x71 || op === 0x68 || op === 0x4b) p += 1;
    else if (op === 0x4d) p += 2;
    else if (op === 0x72 || op === 0x6a || op === 0x4a) p += 4;
    else if (op === 0x58) p += 4 + u32(p);
    else if (op === 0x8c || op === 0x8a) p += 1 + b[p]!;
    else if (op === 0x63) for (let lines = 0; lines < 2; p++) if (b[p] === 0x0a) lines++;
  }
  return starts;
}

interface Outcome {
  result?: UnpickleResult;
  scan?: unknown;
  error?: string;
  taken: number;
}

/** Unpickles `bytes` with or without the item reader, storages made from their ids alone. */
function readPickle(bytes: Uint8Array, fastItems: boolean): Outcome {
  const storages = new Map<string, TorchStorage>();
  const load = (id: StorageId): TorchStorage => {
    let s = storages.get(id.key);
    if (!s)
      storages.set(
        id.key,
        (s = new TorchStorage(
          id.key,
          id.storageType,
          id.dtype,
          id.location,
          id.numel,
          () => ({ reader: new BufferReader(new Uint8Array(0), 'none'), offset: 0, length: 0 }),
          id.storageModule,
        )),
      );
    return s;
  };
  const scanner = new PickleScanner(0);
  const input = PickleInput.fromBytes(bytes, 'edited.pt');
  const { value, taken } = countingItems((): Omit<Outcome, 'taken'> => {
    try {
      const result = unpickleTorchPickle(input, 'data.pkl', load, scanner, fastItems);
      return { result, scan: { running: scanner.running, failed: scanner.failed, scan: scanner.finish(input.pos) } };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      return { error: `${e.kind}: ${e.message}`, scan: scanner.finish(0) };
    }
  });
  return { ...value, taken };
}

function assertFallsBack(bytes: Uint8Array, what: string): Outcome {
  const fast = readPickle(bytes, true);
  const vm = readPickle(bytes, false);
  assert.equal(fast.error, vm.error, what);
  if (vm.result) assertSameResult(fast.result!, vm.result);
  assert.deepEqual(fast.scan, vm.scan, what);
  return fast;
}

function edited(at: number, remove: number, insert: number[]): Uint8Array {
  return new Uint8Array([...dataPkl.subarray(0, at), ...insert, ...dataPkl.subarray(at + remove)]);
}

/** The opcodes of the item with key `key`, from its key to the next item's key. */
function itemOpcodes(key: string): number[] {
  const starts = opcodeStarts(dataPkl);
  const text = Buffer.from(dataPkl);
  const keyAt = text.indexOf(Buffer.from(key)) - 5; // BINUNICODE and its 4-byte length
  const first = starts.indexOf(keyAt);
  assert.ok(first > 0, `item ${key}`);
  const next = starts.findIndex(
    (s, i) => i > first && (dataPkl[s] === 0x58 || dataPkl[s] === 0x75) && (dataPkl[starts[i - 1]!] === 0x72 || dataPkl[starts[i - 1]!] === 0x71),
  );
  return starts.slice(first, next);
}

describe("fast items: anything outside the grammar is the VM's", () => {
  const whole = readPickle(dataPkl, true).taken;

  it("NONE POP (no change to the value) before any opcode of an item: that item goes to the VM, the result is the VM's", () => {
    const ops = itemOpcodes('experts.10.w3.weight');
    assert.ok(ops.length > 25, `${ops.length} opcodes`);
    for (const at of ops) {
      const fast = assertFallsBack(edited(at, 0, [0x4e, 0x30]), `NONE POP at ${at}`);
      // before the key, or before the tensor's PUT (optional, as every PUT: the VM does it), the pair
      // falls outside the item, which is still read fast
      if (at === ops[0] || at === ops[ops.length - 1]) assert.equal(fast.taken, whole);
      else assert.ok(fast.taken < whole && fast.taken >= whole - 2, `at ${at}: ${fast.taken} of ${whole} items read fast`);
    }
  });

  it("an item cut short at every byte: the VM's error", () => {
    const ops = itemOpcodes('experts.20.w1.weight');
    for (let at = ops[0]!; at < ops[ops.length - 1]! + 5; at++) assertFallsBack(dataPkl.subarray(0, at), `cut at ${at}`);
  });

  it("every byte of an item replaced by each of a few bytes: the VM's result or error", () => {
    const ops = itemOpcodes('experts.30.w2.weight');
    for (let at = ops[0]!; at < ops[ops.length - 1]! + 5; at++)
      for (const byte of [0x00, 0x01, 0x28, 0x2e, 0x4e, 0x63, 0x68, 0x71, 0x74, 0x80, 0x88, 0xff]) {
        if (byte !== dataPkl[at]) assertFallsBack(edited(at, 1, [byte]), `byte ${byte} at ${at}`);
      }
  });

  it('values read back later: a key, a size tuple and the hooks dict stored at an index read again', () => {
    // 'experts.40.w0.weight' PUTs its key, its size tuple and its hooks; a new item reads each back
    const ops = itemOpcodes('experts.40.w0.weight');
    const puts = ops.filter((at) => dataPkl[at] === 0x72).map((at) => Buffer.from(dataPkl).readUInt32LE(at + 1));
    const lastItemEnd = opcodeStarts(dataPkl).find((at, i, all) => dataPkl[at] === 0x75 && i > all.indexOf(ops[0]!))!;
    for (const index of puts) {
      const readBack = [0x58, 1, 0, 0, 0, 0x7a, 0x6a, ...new Uint8Array(new Uint32Array([index]).buffer)];
      const fast = assertFallsBack(edited(lastItemEnd, 0, readBack), `memo ${index} read back`);
      assert.ok(fast.taken >= whole - 2, `memo ${index}: ${fast.taken} of ${whole} items read fast`);
    }
  });

  it("a memo index never stored, and a function that is not _rebuild_tensor_v2: the VM's error or value", () => {
    const ops = itemOpcodes('experts.50.w5.weight');
    const fnGet = ops.find((at) => dataPkl[at] === 0x68)!; // BINGET of _rebuild_tensor_v2
    assertFallsBack(edited(fnGet + 1, 1, [200]), 'BINGET 200');
    for (let index = 0; index < 8; index++) assertFallsBack(edited(fnGet + 1, 1, [index]), `BINGET ${index}`);
  });
});
