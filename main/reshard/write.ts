/**
 * Carries out a planned re-shard: every output is written to a temporary place, fsynced, read back
 * and verified, and only then published (one file by rename, several files or a folder together
 * from a staging folder). Nothing partial is left behind on failure or cancellation.
 */
import type { WeightsOnlyRefusal } from '../formats/pickle/pickler.ts';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OutputCheck, ReshardProgress, TensorVerdict } from '../../shared/reshard.ts';
import { writeCheckedAtomically } from '../io/atomic-file.ts';
import { readBackCrc, releaseReadBack } from '../io/byte-verifier.ts';
import { StorageReadBack } from '../convert/storage-read-back.ts';
import { archiveNameFor } from '../convert/convert-file.ts';
import { deviceMapper } from '../convert/key-rules.ts';
import { verifyOutput } from '../convert/read-back.ts';
import { writeTorchCheckpoint } from '../convert/write-checkpoint.ts';
import { writeDcpFolder } from '../formats/dcp/dcp-writer.ts';
import { asCheckpointError, CheckpointError } from '../errors.ts';
import { PyDict, type PyValue } from '../formats/values/python-values.ts';
import { readShardIndex } from '../formats/safetensors/shard-index.ts';
import { writeSafetensors } from '../formats/safetensors/safetensors-writer.ts';
import type { TorchStorage } from '../formats/values/torch-values.ts';
import { tensorSource, type NamedTensor, type WriteJob } from './plan.ts';
import { Staging } from '../io/staging.ts';
import { dottedName } from '../checkpoint/replace-tensors.ts';
import { checkTorchPieces, dcpReadBackKey, verifyDcp, verifySafetensors, type DcpReadBack, type VerifyContext } from './read-back.ts';

export interface WriteContext {
  onProgress(p: ReshardProgress): void;
  cancelled(): boolean;
}

export interface WriteOutcome {
  outputs: OutputCheck[];
  pieceChecks: number;
  bytesCopied: number;
}

export async function executeJob(job: WriteJob, totalBytes: number, force: boolean, ctx: WriteContext): Promise<WriteOutcome> {
  let copied = 0;
  let verified = 0;
  const checkCancelled = (): void => {
    if (ctx.cancelled()) throw new CheckpointError('cancelled', 're-shard cancelled; nothing was written');
  };
  const onBytes =
    (label: string) =>
    (n: number): void => {
      copied += n;
      ctx.onProgress({ phase: 'write', done: copied, total: totalBytes, unit: 'bytes', label });
    };
  const vctx = (label: string): VerifyContext => ({
    checkCancelled,
    onBytes: (n) => {
      verified += n;
      ctx.onProgress({ phase: 'verify', done: verified, total: 0, unit: 'bytes', label });
    },
  });
  let pieceChecks = 0;

  if (job.kind === 'torch') {
    const multi = job.outputs.length > 1;
    const staging = multi ? Staging.create(job.outputs[0]!.file) : null;
    const outputs: OutputCheck[] = [];
    try {
      for (const out of job.outputs) {
        const location = deviceMapper(job.rules, out.rank ?? 0);
        const dest = staging ? staging.path(path.basename(out.file)) : out.file;
        const label = path.basename(out.file);
        const value = await writeTorchFile(dest, out.file, job.tree, {
          location: (s) => location(s.location),
          onWeightsOnlyRefusal: job.onWeightsOnlyRefusal,
          overwrite: force || !!staging,
          syncFolder: !staging,
          checkCancelled,
          onBytes: onBytes(label),
          vctx: vctx(label),
          addPieces: (n) => (pieceChecks += n),
        });
        outputs.push(value);
        if (!value.verified) break;
      }
      if (staging) {
        if (outputs.every((o) => o.verified) && outputs.length === job.outputs.length)
          staging.publishFiles(
            job.outputs.map((o) => ({ name: path.basename(o.file), dest: o.file })),
            force,
          );
        else staging.discard();
      }
    } catch (e) {
      staging?.discard();
      throw e;
    }
    return { outputs, pieceChecks, bytesCopied: copied };
  }

  if (job.kind === 'safetensors') {
    const planned = job.tensors.map((t) => ({ name: t.name, source: tensorSource(t.tensor) }));
    let tmpFile = '';
    const { value } = await writeCheckedAtomically(
      job.file,
      force,
      (fd, tmp) => writeSafetensors(fd, planned, job.metadata, { onBytes: onBytes(path.basename(((tmpFile = tmp), job.file))), checkCancelled }),
      async (tmp, written) => {
        const r = await verifySafetensors(tmp, job.file, planned, written, job.metadata, vctx(path.basename(job.file)));
        pieceChecks += r.pieces;
        const { pieces: _, ...check } = r;
        return { value: check, publish: check.verified };
      },
    ).finally(() => releaseReadBack(tmpFile));
    return { outputs: [value], pieceChecks, bytesCopied: copied };
  }

  const staging = Staging.create(job.dir);
  try {
    const outputs: OutputCheck[] = [];
    if (job.kind === 'shards') {
      for (const f of job.split.files) {
        const dest = staging.path(f.name);
        const shownAs = path.join(job.dir, f.name);
        const tensors: NamedTensor[] = f.entries.map((e) => ({ name: e.name, tensor: e.item }));
        let tmpFile = '';
        if (job.format === 'safetensors') {
          const planned = tensors.map((t) => ({ name: t.name, source: tensorSource(t.tensor) }));
          const { value } = await writeCheckedAtomically(
            dest,
            true,
            (fd, tmp) => writeSafetensors(fd, planned, job.metadata, { onBytes: onBytes(((tmpFile = tmp), f.name)), checkCancelled }),
            async (tmp, written) => {
              const r = await verifySafetensors(tmp, shownAs, planned, written, job.metadata, vctx(f.name));
              pieceChecks += r.pieces;
              const { pieces: _, ...check } = r;
              return { value: check, publish: check.verified };
            },
            { syncFolder: false },
          ).finally(() => releaseReadBack(tmpFile));
          outputs.push(value);
        } else {
          // a .bin shard is `torch.save({name: tensor, ...})` of its part of the state dict
          const tree = new PyDict();
          for (const t of tensors) tree.set(t.name, t.tensor);
          outputs.push(
            await writeTorchFile(dest, shownAs, tree, {
              location: () => 'cpu',
              overwrite: true,
              syncFolder: false,
              checkCancelled,
              onBytes: onBytes(f.name),
              vctx: vctx(f.name),
              addPieces: (n) => (pieceChecks += n),
            }),
          );
        }
        if (!outputs[outputs.length - 1]!.verified) break;
      }
      if (job.index && outputs.every((o) => o.verified)) {
        const name = path.basename(job.split.indexName!);
        const { value } = await writeCheckedAtomically(
          staging.path(name),
          true,
          (fd) => fs.writeSync(fd, job.index!),
          async (tmp) => {
            const check = checkIndex(tmp, path.join(job.dir, name), job);
            return { value: check, publish: check.verified };
          },
          { syncFolder: false },
        );
        outputs.push(value);
      }
    } else {
      // each storage record is read back in a helper thread while the next is written (as convert)
      const readBack: DcpReadBack = new Map();
      const files = new Set<string>();
      try {
        const result = await writeDcpFolder(staging.dir, job.items, job.ranks, {
          onBytes: onBytes('dcp'),
          checkCancelled,
          onStorageWritten: (file, offset, nbytes) => {
            files.add(file);
            readBack.set(dcpReadBackKey(file, offset, nbytes), readBackCrc(file, offset, nbytes));
          },
        }).catch((e: unknown) => {
          // a failed write (ENOSPC has no path) is the destination's, never the hidden staging folder's
          throw asCheckpointError(e, job.dir);
        });
        outputs.push(await verifyDcp(staging.dir, job.dir, job.items, result, vctx('dcp'), readBack));
      } finally {
        for (const f of files) releaseReadBack(f);
      }
    }
    if (outputs.length && outputs.every((o) => o.verified)) staging.publishFolder(force);
    else staging.discard();
    return { outputs, pieceChecks, bytesCopied: copied };
  } catch (e) {
    staging.discard();
    throw e;
  }
}

/** How one torch file of a re-shard is written: the rank's device mapping, and where it is published. */
interface TorchFileWrite {
  location: (s: TorchStorage) => string;
  /** write-checkpoint.ts `WriteOptions.onWeightsOnlyRefusal` */
  onWeightsOnlyRefusal?(what: WeightsOnlyRefusal): void;
  /** replace an existing file (--force, or a file in the hidden staging folder) */
  overwrite: boolean;
  /** fsync the destination's folder after the rename; a staged file's folder is synced when it is published */
  syncFolder: boolean;
  checkCancelled: () => void;
  onBytes: (n: number) => void;
  vctx: VerifyContext;
  addPieces: (n: number) => void;
}

/** A torch file (a rank file, or a .bin shard) written and verified like a conversion output. */
async function writeTorchFile(dest: string, shownAs: string, tree: PyValue, w: TorchFileWrite): Promise<OutputCheck> {
  const readBack = new StorageReadBack();
  let tmpFile = '';
  const { value } = await writeCheckedAtomically(
    dest,
    w.overwrite,
    (fd, tmp) =>
      writeTorchCheckpoint(fd, ((tmpFile = tmp), tree), {
        archiveName: archiveNameFor(shownAs),
        location: w.location,
        checkCancelled: w.checkCancelled,
        onBytes: w.onBytes,
        onStorageWritten: (s) => readBack.add(tmp, s),
        ...(w.onWeightsOnlyRefusal ? { onWeightsOnlyRefusal: w.onWeightsOnlyRefusal } : {}),
      }),
    async (tmp, written) => {
      const r = await verifyOutput(tmp, shownAs, tree, written.storages, w.location, readBack);
      const checks: TensorVerdict[] = r.checks.toArray().map((c) => ({
        name: dottedName(c.path),
        ok: c.ok,
        crc32: c.crc32,
        ...(c.problem ? { problem: c.problem } : {}),
      }));
      let mismatch = r.mismatch;
      if (r.verified) {
        const p = checkTorchPieces(tmp, tree, new Map(checks.map((c) => [c.name, c])), w.vctx);
        w.addPieces(p.pieces);
        mismatch ??= p.mismatch;
      }
      const check: OutputCheck = {
        file: shownAs,
        bytes: r.bytes,
        tensors: r.tensors,
        verified: mismatch === undefined,
        ...(mismatch ? { mismatch } : {}),
        checks,
      };
      return { value: check, publish: check.verified };
    },
    { syncFolder: w.syncFolder },
  ).finally(() => releaseReadBack(tmpFile));
  return value;
}

/** The written index read back: the weight map names every tensor in the shard the plan put it in. */
function checkIndex(file: string, shownAs: string, job: Extract<WriteJob, { kind: 'shards' }>): OutputCheck {
  const index = readShardIndex(file);
  let mismatch: string | undefined;
  const want = new Map(job.split.files.flatMap((f) => f.entries.map((e) => [e.name, f.name] as const)));
  if (index.weightMap.size !== want.size) mismatch = `the index maps ${index.weightMap.size} tensors, ${want.size} were written`;
  for (const [k, v] of want) if (index.weightMap.get(k) !== v) mismatch ??= `the index puts ${k} in ${index.weightMap.get(k)}, it was written to ${v}`;
  if (index.metadata['total_size'] !== job.split.totalSize)
    mismatch ??= `the index says total_size ${String(index.metadata['total_size'])}, ${job.split.totalSize} planned`;
  if (index.missing.length) mismatch ??= `the index names missing shards: ${index.missing.join(', ')}`;
  return {
    file: shownAs,
    bytes: fs.statSync(file).size,
    tensors: index.weightMap.size,
    verified: mismatch === undefined,
    ...(mismatch ? { mismatch } : {}),
    checks: [],
  };
}
