/**
 * A structure-aware fuzzer's inputs: for each family the reader handles (zip, pickle,
 * safetensors, npy/npz, legacy, tar, shard index, DCP) a generator that starts from a real
 * fixture or a valid structure and damages it where the structure lives: lengths, offsets,
 * opcodes, headers, names, nesting, sharing. Every case is deterministic from its seed.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZipArchive } from '../../main/formats/zip/zip.ts';
import { BufferReader } from '../../main/io/random-access.ts';
import { bigLong4, deepLists, makeZip, memoDagLists, tupleDagDictKey } from './hostile-inputs.ts';

export const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const fixture = (p: string): Buffer => readFileSync(join(FIXTURES, p));

/** xorshift32: a fixed seed makes every case reproducible. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}
type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rng, n: number): number => Math.floor(r() * n);

/** Values that break length and offset fields. */
const EXTREMES = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

/** Byte-level damage, biased towards the first `hot` bytes where headers and pickles live. */
export function mutateBytes(src: Uint8Array, r: Rng, hot = src.length): Buffer {
  let b = Buffer.from(src);
  const at = int(r, Math.max(1, Math.min(hot, b.length)));
  switch (int(r, 6)) {
    case 0:
      for (let i = 0, n = 1 + int(r, 8); i < n; i++) b[int(r, Math.min(hot, b.length))] = int(r, 256);
      break;
    case 1:
      b = b.subarray(0, at);
      break;
    case 2:
      if (at + 4 <= b.length) b.writeUInt32LE(pick(r, EXTREMES), at);
      break;
    case 3:
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(r, 32))]);
      break;
    case 4: {
      const len = 1 + int(r, 64);
      b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
      break;
    }
    default:
      b[at] = (b[at] ?? 0) ^ (1 << int(r, 8));
  }
  return b;
}

/** Pickle opcodes spliced in at a random place: sharing, depth, huge lengths, bad escapes. */
const PICKLE_SNIPPETS: Buffer[] = [
  Buffer.from([0x8b, 0xff, 0xff, 0xff, 0x7f]), // LONG4 of 2 GiB
  Buffer.from([0x58, 0xff, 0xff, 0xff, 0xff]), // BINUNICODE of 4 GiB
  Buffer.from([0x8e, 0, 0, 0, 0, 0, 0, 0x10, 0]), // BINBYTES8 of 2^52
  Buffer.from('(((((((((((((((((((('), // MARKs
  Buffer.from([0x68, 0x00, 0x68, 0x00, 0x86]), // BINGET 0 twice, TUPLE2
  Buffer.from('V\\Uffffffff\n', 'latin1'),
  Buffer.from([0x94, 0x32, 0x32, 0x32]), // MEMOIZE, DUP
  Buffer.from('cos\nsystem\n', 'latin1'),
];

function mutatePickle(src: Uint8Array, r: Rng): Buffer {
  if (r() < 0.5) return mutateBytes(src, r);
  const at = int(r, src.length);
  return Buffer.concat([src.subarray(0, at), pick(r, PICKLE_SNIPPETS), src.subarray(at)]);
}

/** A torch zip rebuilt with one entry damaged: its pickle, its declared sizes, or its compression. */
function mutateTorchZip(src: Buffer, r: Rng): Buffer {
  const zip = ZipArchive.open(new BufferReader(src, 'seed'));
  const entries: { name: string; raw: Buffer; deflate: boolean }[] = zip.entries.map((e) => ({
    name: e.name,
    raw: Buffer.from(zip.readEntry(e)),
    deflate: false,
  }));
  const pkl = entries.find((e) => e.name.endsWith('data.pkl'))!;
  switch (int(r, 5)) {
    case 0:
      pkl.raw = mutatePickle(pkl.raw, r);
      break;
    case 1:
      pkl.deflate = true;
      pkl.raw = Buffer.concat([pkl.raw, Buffer.alloc((1 + int(r, 64)) << 20)]);
      break; // a bomb-ish pickle
    case 2:
      entries.splice(int(r, entries.length), 1);
      break; // a record missing
    case 3:
      entries.push({ ...pick(r, entries) });
      break; // a duplicate name
    default:
      pkl.raw = pick(r, [memoDagLists(30 + int(r, 20)), tupleDagDictKey(40 + int(r, 30)), deepLists(2000 + int(r, 50_000)), bigLong4(1 + int(r, 300_000))]);
  }
  const out = makeZip(entries);
  return r() < 0.3 ? mutateBytes(out, r, out.length) : out;
}

function safetensorsFile(r: Rng): Buffer {
  const n = 1 + int(r, 50);
  const tensors: Record<string, unknown> = {};
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const shape = [1 + int(r, 4), 1 + int(r, 4)];
    const bytes = shape[0]! * shape[1]! * 4;
    tensors[`layer.${i}.weight`] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const victim = tensors[`layer.${int(r, n)}.weight`] as Record<string, unknown>;
  switch (int(r, 6)) {
    case 0:
      victim['data_offsets'] = [pick(r, EXTREMES), pick(r, EXTREMES) * 4096];
      break;
    case 1:
      victim['shape'] = [2 ** 40, 2 ** 40];
      break;
    case 2:
      victim['dtype'] = pick(r, ['F128', 'F6_E2M3', '', 'U8 ']);
      break;
    case 3:
      tensors['__metadata__'] = { format: { nested: [[[[1]]]] } };
      break;
    case 4: {
      let deep: unknown = {};
      for (let i = 0; i < 200 + int(r, 5000); i++) deep = { a: deep };
      tensors['__metadata__'] = deep;
      break;
    }
    default:
      break;
  }
  const header = Buffer.from(JSON.stringify(tensors));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const file = Buffer.concat([len, header, Buffer.alloc(offset)]);
  return r() < 0.4 ? mutateBytes(file, r, 8 + header.length) : file;
}

function npyFile(r: Rng, descr = pick(r, ['<f4', '|S3', '|O', '|O8', '<f16', "[('a', '<f4')]", '<c8', '>i8', '<U5'])): Buffer {
  const shape = pick(r, ['(3,)', '(2, 2)', '()', '(0,)', '(4294967296, 4294967296)', '(-1,)']);
  let header = `{'descr': ${descr.startsWith('[') ? descr : `'${descr}'`}, 'fortran_order': ${r() < 0.5 ? 'False' : 'True'}, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const h = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(h);
  h[6] = 1;
  h.writeUInt16LE(header.length, 8);
  const file = Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.alloc(int(r, 64))]);
  return r() < 0.3 ? mutateBytes(file, r, 10 + header.length) : file;
}

function npzFile(r: Rng): Buffer {
  const members = Array.from({ length: 1 + int(r, 4) }, (_, i) => ({ name: `m${i}.npy`, raw: npyFile(r, i === 0 ? '<f4' : undefined), deflate: r() < 0.5 }));
  if (r() < 0.3) members.push({ name: 'format.npy', raw: npyFile(r, '|S3'), deflate: false });
  return makeZip(members);
}

export type Family = 'zip' | 'pickle' | 'safetensors' | 'npy' | 'npz' | 'legacy' | 'tar' | 'index' | 'dcp';
export const FAMILIES: readonly Family[] = ['zip', 'pickle', 'safetensors', 'npy', 'npz', 'legacy', 'tar', 'index', 'dcp'];

/**
 * Writes case `seed` of `family` under `dir` and returns the path to inspect (a file or, for an
 * index or a DCP folder, what a user would point the CLI at).
 */
export function writeCase(family: Family, seed: number, dir: string): string {
  const r = rng(seed * 7919 + FAMILIES.indexOf(family) + 1);
  mkdirSync(dir, { recursive: true });
  const file = (name: string, bytes: Uint8Array): string => {
    writeFileSync(join(dir, name), bytes);
    return join(dir, name);
  };
  switch (family) {
    case 'zip':
      return file(
        'case.pt',
        mutateTorchZip(fixture(pick(r, ['torch/cpu_state_dict.pt', 'torch/nested_containers.pt', 'torch/views.pt', 'torch/malicious.pt'])), r),
      );
    case 'pickle': {
      const seedPickle = pick(r, ['pickles/rich.p2.pkl', 'pickles/rich.p4.pkl', 'pickles/evil_reduce.p2.pkl', 'pickles/big_bytes.p4.pkl']);
      const body = mutatePickle(fixture(seedPickle), r);
      return file('case.pkl', body[0] === 0x80 ? body : Buffer.concat([Buffer.from([0x80, 2]), body]));
    }
    case 'safetensors':
      return file('case.safetensors', safetensorsFile(r));
    case 'npy':
      return file('case.npy', npyFile(r));
    case 'npz':
      return file('case.npz', npzFile(r));
    case 'legacy': {
      const src = fixture(pick(r, ['torch/legacy_state_dict.pt', 'torch/legacy_training_checkpoint.pt']));
      return file('case.pt', mutateBytes(src, r, 4096));
    }
    case 'tar': {
      const src = fixture('tar/legacy_tar.pt');
      return file('case.tar.pt', mutateBytes(src, r, Math.min(src.length, 8192)));
    }
    case 'index': {
      file('a.safetensors', safetensorsFile(rng(seed + 1)));
      const names = ['a.safetensors', 'model.safetensors.index.json', 'missing.safetensors', '../outside.safetensors', 'other.index.json', ''];
      const weightMap: Record<string, unknown> = {};
      for (let i = 0; i < 1 + int(r, 6); i++) weightMap[`layer.${int(r, 60)}.weight`] = r() < 0.6 ? 'a.safetensors' : pick(r, [...names, 7, null]);
      file('other.index.json', Buffer.from(JSON.stringify({ weight_map: { x: 'model.safetensors.index.json' } })));
      const text = Buffer.from(JSON.stringify({ metadata: { total_size: int(r, 1 << 20) }, weight_map: weightMap }));
      return file('model.safetensors.index.json', r() < 0.3 ? mutateBytes(text, r) : text);
    }
    case 'dcp': {
      const folder = join(dir, 'dcp');
      cpSync(join(FIXTURES, 'torch2/dcp'), folder, { recursive: true });
      const victim = pick(r, ['.metadata', '.metadata', '__0_0.distcp']);
      const src = readFileSync(join(folder, victim));
      writeFileSync(join(folder, victim), victim === '.metadata' ? mutatePickle(src, r) : mutateBytes(src, r));
      return folder;
    }
  }
}
