/**
 * Checks a written re-shard output the way a conversion is checked (re-opened with the reader,
 * every tensor's dtype and shape, the CRC-32 of its bytes as read back from the file against the
 * CRC of the source bytes), plus, for tensors assembled from pieces (DCP chunks, FSDP shards),
 * every piece cut back out of the written tensor and matched against the piece in its source
 * file. That second check takes a different path through the bytes than the writer did, so an
 * assembly that put a piece in the wrong place cannot pass.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from '../io/crc32.ts';
import type { OutputCheck, TensorVerdict } from '../../shared/reshard.ts';
import { rootStorage } from '../checkpoint/inspect.ts';
import { walkTensors } from '../checkpoint/tree.ts';
import { readBackCrc, releaseReadBack } from '../io/byte-verifier.ts';
import { readDcpFolder, readDcpMetadata } from '../formats/dcp/dcp.ts';
import type { DcpWriteItem, DcpWriteResult } from '../formats/dcp/dcp-writer.ts';
import { asCheckpointError } from '../errors.ts';
import { openFormat } from '../formats/open-format.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import { FileReader } from '../io/random-access.ts';
import { readSafetensorsHeader } from '../formats/safetensors/safetensors.ts';
import type { SafetensorsWriteResult } from '../formats/safetensors/safetensors-writer.ts';
import { AssembledSource, BoxSource, FileWindow, ViewSource, streamSource, type TensorSource } from '../formats/values/tensor-source.ts';
import { openTorchArchive, unpickleRecord } from '../formats/torch/torch-zip.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { assemblyOf, sourceOf } from '../formats/values/virtual-tensor.ts';
import { dottedName } from '../checkpoint/replace-tensors.ts';
import { hex } from '../convert/tensor-checks.ts';
import { ReshapedSource } from '../formats/values/reshaped-source.ts';
import { combinedPieceCrc } from '../formats/values/flat-pieces.ts';

export interface VerifyContext {
  onBytes?(n: number): void;
  checkCancelled?(): void;
}

export function crcOf(src: TensorSource, ctx: VerifyContext = {}): number {
  let crc = 0;
  streamSource(
    src,
    (c) => {
      crc = crc32(c, crc);
      ctx.onBytes?.(c.length);
    },
    ctx.checkCancelled,
  );
  return crc >>> 0;
}

/** Assembled tensors of a planned tree, by the path (or name) they will have in the output. */
export function assembledIn(tensors: { key: string; tensor: TorchTensor }[]): Map<string, AssembledSource> {
  const out = new Map<string, AssembledSource>();
  for (const { key, tensor } of tensors) {
    const a = tensor.storage ? assemblyOf(rootStorage(tensor.storage)) : undefined;
    if (a) out.set(key, a);
  }
  return out;
}

/**
 * Cuts every piece of each assembled tensor back out of the written file and compares its CRC-32
 * with the piece's own bytes in the source. `written` maps the same keys to the written tensors.
 */
export function checkPieces(
  assembled: Map<string, AssembledSource>,
  written: Map<string, TorchTensor>,
  verdicts: Map<string, TensorVerdict>,
  ctx: VerifyContext,
): { pieces: number; mismatch?: string } {
  let pieces = 0;
  let mismatch: string | undefined;
  for (const [key, a] of assembled) {
    const out = written.get(key);
    const v = verdicts.get(key);
    if (!out) continue; // reported missing by the tensor check
    // flat slices (DeepSpeed): their combined CRC against the tensor's CRC as read back from the file
    const readBack = v?.crc32 && out.storage && out.storageOffset === 0 && out.nbytes === out.storage.nbytes ? parseInt(v.crc32, 16) : null;
    const combined = readBack === null ? null : combinedPieceCrc(a);
    if (combined !== null) {
      pieces += a.pieces.length;
      if (combined !== readBack) {
        const problem = `its ${a.pieces.length} slices have combined crc32 ${hex(combined)}, the tensor reads back with ${hex(readBack!)}`;
        mismatch ??= `${key}: ${problem}`;
        if (v && v.ok) {
          v.ok = false;
          v.problem = problem;
        }
      }
      continue;
    }
    const view = new ViewSource(out);
    // an assembly of flat slices (DeepSpeed) is compared with the written tensor seen flat
    const whole = String(a.shape) === String(out.shape) ? view : new ReshapedSource(view, a.shape);
    for (const [k, p] of a.pieces.entries()) {
      pieces++;
      const got = crcOf(new BoxSource(whole, p.offsets, p.sizes), ctx);
      // the piece's CRC as its source bytes were read for writing, else read again now
      const want = a.pieceCrc(k) ?? crcOf(p.source, ctx);
      if (got !== want) {
        const problem = `piece [${p.offsets}]+[${p.sizes}] from ${p.label} reads back with crc32 ${hex(got)}, the source piece has ${hex(want)}`;
        mismatch ??= `${key}: ${problem}`;
        if (v && v.ok) {
          v.ok = false;
          v.problem = problem;
        }
      }
    }
    view.release();
  }
  return { pieces, ...(mismatch ? { mismatch } : {}) };
}

/** Piece checks for a written torch file against its planned tree (keys are tensor paths). */
export function checkTorchPieces(
  file: string,
  planned: PyValue,
  verdicts: Map<string, TensorVerdict>,
  ctx: VerifyContext,
): { pieces: number; mismatch?: string } {
  const assembled = assembledIn(walkTensors(planned).map((t) => ({ key: dottedName(t.path), tensor: t.tensor })));
  if (!assembled.size) return { pieces: 0 };
  const reading = openFormat(file);
  try {
    const written = new Map(walkTensors(reading.root).map((t) => [dottedName(t.path), t.tensor]));
    return checkPieces(assembled, written, verdicts, ctx);
  } finally {
    reading.close();
  }
}

/** A written safetensors file: format rules (the reader's validation), names, dtypes, shapes, offsets, metadata, bytes. */
export async function verifySafetensors(
  tmp: string,
  shownAs: string,
  planned: { name: string; source: TensorSource }[],
  written: SafetensorsWriteResult,
  metadata: [string, string][] | null,
  ctx: VerifyContext,
): Promise<OutputCheck & { pieces: number }> {
  const checks: TensorVerdict[] = [];
  let mismatch: string | undefined;
  const bad = (why: string): void => void (mismatch ??= why);
  let reader: FileReader | null = null;
  try {
    reader = new FileReader(tmp);
    const header = readSafetensorsHeader(reader);
    if (header.headerBytes % 8 !== 0) bad(`header is ${header.headerBytes} bytes, not a multiple of 8`);
    if (reader.size !== written.bytes) bad(`file is ${reader.size} bytes, ${written.bytes} were written`);
    const wantMeta = JSON.stringify(metadata && metadata.length ? metadata : []);
    if (JSON.stringify(header.metadata) !== wantMeta) bad(`__metadata__ reads back as ${JSON.stringify(header.metadata)}`);
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    if (header.tensors.length !== written.tensors.length) bad(`${header.tensors.length} tensors read back, ${written.tensors.length} were written`);
    const crcs = await Promise.all(written.tensors.map((w) => readBackCrc(tmp, header.dataStart + w.begin, w.end - w.begin)));
    written.tensors.forEach((w, i) => {
      const got = byName.get(w.name);
      const v: TensorVerdict = { name: w.name, ok: true, crc32: hex(crcs[i]!) };
      checks.push(v);
      const fail = (p: string): void => {
        v.ok = false;
        v.problem = p;
        bad(`${w.name}: ${p}`);
      };
      if (!got) return fail('missing from the written file');
      if (got.tag !== w.tag || String(got.shape) !== String(w.shape)) return fail(`reads back as ${got.tag} [${got.shape}], planned ${w.tag} [${w.shape}]`);
      if (got.begin !== w.begin || got.end !== w.end) return fail(`data_offsets [${got.begin}, ${got.end}], planned [${w.begin}, ${w.end}]`);
      if (crcs[i] !== w.crc32) fail(`bytes read back have crc32 ${hex(crcs[i]!)}, the source's are ${hex(w.crc32)}`);
    });
    if (planned.length !== written.tensors.length) bad(`${written.tensors.length} tensors written, ${planned.length} planned`);
  } catch (e) {
    bad(`the written file does not read back: ${asCheckpointError(e, shownAs).message}`);
  } finally {
    reader?.close();
  }
  let pieces = 0;
  const assembled = new Map<string, AssembledSource>();
  for (const p of planned) {
    const a = p.source instanceof ReshapedSource ? p.source.base : p.source;
    if (a instanceof AssembledSource) assembled.set(p.name, a);
  }
  if (assembled.size && mismatch === undefined) {
    const reading = openFormat(tmp);
    try {
      const written_ = new Map(walkTensors(reading.root).map((t) => [String(t.path[0]), t.tensor]));
      const r = checkPieces(assembled, written_, new Map(checks.map((c) => [c.name, c])), ctx);
      pieces = r.pieces;
      if (r.mismatch) bad(r.mismatch);
    } finally {
      reading.close();
    }
  }
  return { file: shownAs, bytes: written.bytes, tensors: checks.length, verified: mismatch === undefined, ...(mismatch ? { mismatch } : {}), checks, pieces };
}

/**
 * CRCs of DCP storage records read back while the folder was being written, by
 * `dcpReadBackKey(file, offset, nbytes)`; a record the read-back archive puts elsewhere misses and
 * is read where the archive says it is.
 */
export type DcpReadBack = Map<string, Promise<number>>;
export const dcpReadBackKey = (file: string, offset: number, nbytes: number): string => `${file}\0${offset}\0${nbytes}`;

/**
 * A written DCP folder: `.metadata` read back describes exactly the items and chunks written;
 * each item's archive opens and holds what was planned; each storage record's bytes read back
 * with the CRC they were written with; and the folder read as one checkpoint gives every tensor
 * with the CRC of its source.
 */
export async function verifyDcp(
  dir: string,
  shownAs: string,
  items: DcpWriteItem[],
  result: DcpWriteResult,
  ctx: VerifyContext,
  readBack: DcpReadBack = new Map(),
): Promise<OutputCheck> {
  const checks = new Map<string, TensorVerdict>();
  let mismatch: string | undefined;
  const bad = (name: string, why: string): void => {
    mismatch ??= `${name}: ${why}`;
    const v = checks.get(name);
    if (v && v.ok) {
      v.ok = false;
      v.problem = why;
    }
  };
  for (const it of items) checks.set(it.fqn, { name: it.fqn, ok: true, crc32: '' });
  try {
    const meta = readDcpMetadata(dir);
    if (meta.items.map((i) => i.fqn).join('\n') !== items.map((i) => i.fqn).join('\n')) bad('.metadata', 'items read back differ from the items written');
    const planned = new Map(items.map((i) => [i.fqn, i]));
    for (const m of meta.items) {
      const it = planned.get(m.fqn);
      if (!it) continue;
      if (m.kind !== it.kind) bad(m.fqn, `is a ${m.kind} item in .metadata, planned ${it.kind}`);
      else if (m.kind === 'tensor' && it.kind === 'tensor') {
        if (m.dtype.name !== it.source.dtype.name || String(m.size) !== String(it.source.shape))
          bad(m.fqn, `.metadata says ${m.dtype.name} [${m.size}], planned ${it.source.dtype.name} [${it.source.shape}]`);
        const chunks = (c: { offsets: number[]; sizes: number[] }[]): string => c.map((x) => `${x.offsets}/${x.sizes}`).join(' ');
        if (chunks(m.chunks) !== chunks(it.chunks)) bad(m.fqn, `.metadata lists chunks ${chunks(m.chunks)}, planned ${chunks(it.chunks)}`);
      }
    }
    if (meta.plannerData && items.some((i) => JSON.stringify(meta.plannerData!.get(i.fqn)) !== JSON.stringify(i.path)))
      bad('.metadata', 'planner_data does not give the planned paths');
    // every item archive, and its storage records read back
    const fds = new Map<string, number>();
    try {
      for (const w of result.items) {
        const file = path.join(dir, w.file);
        let fd = fds.get(file);
        if (fd === undefined) fds.set(file, (fd = fs.openSync(file, 'r')));
        const window = new FileWindow(file, fd, w.offset, w.length);
        const archive = openTorchArchive(window);
        const value = unpickleRecord(archive, 'data.pkl', new Map()).value;
        if (w.kind === 'tensor' && (!(value instanceof TorchTensor) || String(value.shape) !== String(w.sizes)))
          bad(w.fqn, `chunk [${w.offsets}] does not read back as a tensor of shape [${w.sizes}]`);
        for (const s of w.storages) {
          const e = archive.zip.get(`${archive.prefix}data/${s.key}`);
          if (!e) {
            bad(w.fqn, `storage record data/${s.key} is missing`);
            continue;
          }
          const range = archive.zip.dataRange(e);
          const at = w.offset + range.offset; // where the archive read back puts the record
          const crc = await (readBack.get(dcpReadBackKey(file, at, s.nbytes)) ?? readBackCrc(file, at, s.nbytes));
          const v = checks.get(w.fqn);
          if (v && w.kind === 'tensor') v.crc32 = v.crc32 ? `${v.crc32} ${hex(crc)}` : hex(crc);
          if (crc !== s.crc32) bad(w.fqn, `storage bytes read back have crc32 ${hex(crc)}, the source's are ${hex(s.crc32)}`);
        }
      }
    } finally {
      for (const fd of fds.values()) fs.closeSync(fd);
    }
    // the folder as one checkpoint: every tensor as the source has it
    if (mismatch === undefined) {
      // A source tensor lying in one piece of a file (any plain checkpoint's) is CRC'd in the
      // helper thread, all of them queued now, while this thread reads the folder back.
      const sourceCrcs = new Map<string, Promise<number>>();
      const sourceFiles = new Set<string>();
      for (const it of items) {
        const r = it.kind === 'tensor' && it.source instanceof ViewSource ? it.source.fileRange() : null;
        if (!r) continue;
        sourceFiles.add(r.file);
        sourceCrcs.set(it.fqn, readBackCrc(r.file, r.offset, r.length));
      }
      const back = readDcpFolder(dir);
      try {
        for (const it of items) {
          if (it.kind !== 'tensor') continue;
          const a = back.assembled.get(it.fqn);
          if (!a) {
            bad(it.fqn, 'missing when the folder is read back');
            continue;
          }
          const got = crcOf(sourceOf(a.tensor.storage!)!, ctx);
          const early = sourceCrcs.get(it.fqn);
          if (early) ctx.onBytes?.(it.source.numel * it.source.dtype.size);
          const want = early ? await early : crcOf(it.source, ctx);
          if (got !== want) bad(it.fqn, `read back as one tensor it has crc32 ${hex(got)}, the source's is ${hex(want)}`);
        }
      } finally {
        back.close();
        for (const f of sourceFiles) releaseReadBack(f);
      }
    }
  } catch (e) {
    mismatch ??= `the written folder does not read back: ${asCheckpointError(e, shownAs).message}`;
  }
  const bytes = result.files.reduce((a, f) => a + f.bytes, result.metadataBytes);
  const list = [...checks.values()];
  return {
    file: shownAs,
    bytes,
    tensors: items.filter((i) => i.kind === 'tensor').length,
    verified: mismatch === undefined,
    ...(mismatch ? { mismatch } : {}),
    checks: list,
  };
}
