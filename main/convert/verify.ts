import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import type { OutputReport, TensorCheck } from '../../shared/convert.ts';
import { openCheckpoint } from '../checkpoint/open-checkpoint.ts';
import { rootStorage } from '../checkpoint/inspect.ts';
import { walkTensors, type TensorAt } from '../checkpoint/tree.ts';
import type { PyValue } from '../formats/pickle/values.ts';
import { FileReader } from '../formats/random-access.ts';
import type { TorchStorage } from '../formats/torch-values.ts';
import type { WriteResult } from './write-checkpoint.ts';

const CHUNK = 16 << 20;

/**
 * Re-opens a written file with the reader and checks it against what was planned: the same
 * tensor paths, each with the planned dtype, shape, stride and device, on a storage whose bytes
 * have the CRC-32 the source bytes had. Equal storage bytes and equal views mean equal tensor
 * values. Returns the report with the first mismatch, if any.
 */
export function verifyOutput(file: string, planned: PyValue, written: WriteResult, plannedDevice: (s: TorchStorage) => string): OutputReport {
  const expected = walkTensors(planned);
  const byKey = new Map(written.storages.map((w) => [w.key, w]));
  const out = openCheckpoint(file);
  try {
    const got = new Map(out.tensors.map((t) => [JSON.stringify(t.path), t]));
    const crcOf = new Map<TorchStorage, number>();
    const outCrc = (s: TorchStorage): number => {
      let c = crcOf.get(s);
      if (c === undefined) {
        c = crcOfStorage(s);
        crcOf.set(s, c);
      }
      return c;
    };
    const checks: TensorCheck[] = [];
    let mismatch: string | undefined;
    const note = (check: TensorCheck, problem: string): void => {
      check.ok = false;
      check.problem = problem;
      mismatch ??= `${JSON.stringify(check.path)}: ${problem}`;
    };
    for (const e of expected) {
      const key = JSON.stringify(e.path);
      const t = got.get(key);
      const src = e.tensor;
      const check: TensorCheck = { path: e.path, sourcePath: e.path, dtype: src.dtype.name, shape: src.shape, device: src.storage ? plannedDevice(rootStorage(src.storage)) : src.device, crc32: '', ok: true };
      checks.push(check);
      if (!t) {
        note(check, 'missing from the written file');
        continue;
      }
      got.delete(key);
      compareTensor(check, e, t, byKey, outCrc, note);
    }
    for (const [key] of got) mismatch ??= `${key}: in the written file but not planned`;
    return { file, bytes: fs.statSync(file).size, storages: written.storages.length, tensors: expected.length, verified: mismatch === undefined, ...(mismatch ? { mismatch } : {}), checks };
  } finally {
    out.close();
  }
}

function compareTensor(
  check: TensorCheck, e: TensorAt, t: TensorAt, byKey: Map<string, WriteResult['storages'][number]>,
  outCrc: (s: TorchStorage) => number, note: (c: TensorCheck, p: string) => void,
): void {
  const a = e.tensor;
  const b = t.tensor;
  if (a.dtype.name !== b.dtype.name) return note(check, `dtype ${b.dtype.name}, planned ${a.dtype.name}`);
  if (String(a.shape) !== String(b.shape)) return note(check, `shape [${b.shape}], planned [${a.shape}]`);
  if (String(a.stride) !== String(b.stride)) return note(check, `stride [${b.stride}], planned [${a.stride}]`);
  if (a.requiresGrad !== b.requiresGrad || a.isParameter !== b.isParameter) return note(check, 'requires_grad or Parameter flag changed');
  if (!a.storage || !b.storage) {
    if (a.storage || b.storage) note(check, 'storage missing');
    return;
  }
  const viewShift = a.storage.viewOf ? a.storage.viewOffset / a.dtype.size : 0;
  if (b.storageOffset !== a.storageOffset + viewShift) return note(check, `storage offset ${b.storageOffset}, planned ${a.storageOffset + viewShift}`);
  if (b.device !== check.device) return note(check, `device ${b.device}, planned ${check.device}`);
  const w = byKey.get(b.storage.key);
  if (!w || w.source !== rootStorage(a.storage)) return note(check, `stored in the wrong storage (${b.storage.key})`);
  const crc = outCrc(b.storage);
  check.crc32 = crc.toString(16).padStart(8, '0');
  if (crc !== w.crc32) note(check, `storage bytes differ (crc32 ${check.crc32}, source ${w.crc32.toString(16).padStart(8, '0')})`);
}

/** CRC-32 of a storage's bytes as they are in the written file, read back in chunks. */
function crcOfStorage(s: TorchStorage): number {
  const r = s.locate();
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(r.length, 1)));
  let crc = 0;
  let done = 0;
  const fd = r.reader instanceof FileReader ? r.reader.descriptor : -1;
  while (done < r.length) {
    const n = Math.min(buf.length, r.length - done);
    if (fd >= 0) {
      let got = 0;
      while (got < n) got += fs.readSync(fd, buf, got, n - got, r.offset + done + got) || fail(r.reader.name);
      crc = zlib.crc32(buf.subarray(0, n), crc);
    } else crc = zlib.crc32(r.reader.read(r.offset + done, n), crc);
    done += n;
  }
  return crc >>> 0;
}

function fail(name: string): never {
  throw new Error(`${name}: file ended early while verifying`);
}
