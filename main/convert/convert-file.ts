import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConversionPlan, ConversionReport, OutputReport, Progress } from '../../shared/convert.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { rootStorage, type Checkpoint } from '../checkpoint/inspect.ts';
import { CheckpointError, fail } from '../errors.ts';
import { writeCheckedAtomically } from '../io/atomic-file.ts';
import { readBackCrc, releaseReadBack } from '../io/byte-verifier.ts';
import { buildOutputTree, planCoverageProblem } from './build-output.ts';
import { walkTensors } from '../checkpoint/tree.ts';
import { deviceMapper } from './key-rules.ts';
import { mapRoles, planConversion } from './plan.ts';
import { dangerousCalls } from '../checkpoint/security.ts';
import { verifyOutput } from './read-back.ts';
import { castTree } from './cast-tree.ts';
import { checkFlatSlices } from './slice-check.ts';
import { writeTorchCheckpoint } from './write-checkpoint.ts';

export interface ConvertOptions {
  rules: ConversionRules;
  /** output file (for DDP world sizes > 1, the name the rank files are derived from) */
  output: string | null;
  force: boolean;
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
  /** false in a batch, which fsyncs each output folder once at the end instead of after every file */
  syncFolder?: boolean;
  /** called once the first output's bytes are written, while they are flushed and read back */
  onWaiting?(): void;
}

/** Plans a conversion of one file without writing anything (the dry run and the UI preview). */
export function previewConversion(source: string, rules: ConversionRules, output: string | null): ConversionPlan {
  const ck = openCheckpoint(source, { shardedRanks: 'consolidate' });
  try {
    return planConversion(ck, rules, output);
  } finally {
    ck.close();
  }
}

/**
 * Converts one checkpoint: plan, then for each output build the object, write it atomically,
 * re-open it and verify every tensor against the source. The source is only read; if it changes
 * while being read, the conversion fails and nothing is left behind.
 */
export async function convertFile(source: string, opts: ConvertOptions): Promise<ConversionReport> {
  const t0 = performance.now();
  const before = statOf(source);
  const ck = openCheckpoint(source, { shardedRanks: 'consolidate' });
  try {
    const roles = mapRoles(ck, opts.rules);
    const plan = planConversion(ck, opts.rules, opts.output, roles);
    if (plan.errors.length) fail('usage', `${source}: ${plan.errors[0]}`, source);
    for (const o of plan.outputs) if (o.exists && !opts.force) fail('exists', `${o.file} already exists; pass --force to overwrite it`, o.file);
    const mapped = buildOutputTree(ck, opts.rules, roles);
    const uncovered = planCoverageProblem(mapped, roles, opts.rules);
    if (uncovered) fail('internal', `${source}: ${uncovered}; nothing was written`, source);
    if (ck.tensors.length && !walkTensors(mapped).length) fail('usage', `${source}: the rules leave no tensor to write; nothing was written`, source);
    const danger = dangerousCalls(mapped);
    if (danger.length) {
      fail('unsupported', `${source}: the output would carry ${danger[0]}, which runs when the file is loaded; add --unwrap to keep only the state dict${danger.length > 1 ? ` (${danger.length} such calls)` : ''}`, source);
    }
    const cast = castTree(mapped, opts.rules);
    const tree = cast.tree;
    const total = totalBytes(ck) * plan.outputs.length;
    let done = 0;
    const outputs: OutputReport[] = [];
    const checkCancelled = (): void => {
      if (opts.signal?.aborted) throw new CheckpointError('cancelled', `${source}: conversion cancelled; nothing was written`, source);
    };
    {
      for (const out of plan.outputs) {
        const location = deviceMapper(opts.rules, out.rank ?? 0);
        const readBack = new Map<string, Promise<number>>();
        let tmpFile = '';
        const { value: report } = await writeCheckedAtomically(
          out.file,
          opts.force,
          (fd, tmp) => writeTorchCheckpoint(fd, (tmpFile = tmp, tree), {
            archiveName: archiveNameFor(out.file),
            location: (s) => location(s.location),
            checkCancelled,
            onBytes: (n) => {
              done += n;
              opts.onProgress?.({ done, total, unit: 'bytes', label: path.basename(out.file) });
            },
            // each storage is read back and checked in a helper thread while the next is copied
            onStorageWritten: (w) => readBack.set(w.key, readBackCrc(tmp, w.dataOffset, w.nbytes)),
          }),
          async (tmp, written) => {
            const changed = statOf(source);
            if (changed.size !== before.size || changed.mtimeMs !== before.mtimeMs) {
              fail('io', `${source} changed while it was being converted; nothing was written, run the conversion again`, source);
            }
            const r = await verifyOutput(tmp, out.file, tree, written.storages, (s) => location(s.location), readBack);
            if (r.verified) checkFlatSlices(tree, r);
            return { value: r, publish: r.verified };
          },
          { syncFolder: opts.syncFolder ?? true, ...(opts.onWaiting ? { onWritten: opts.onWaiting } : {}) },
        ).finally(() => releaseReadBack(tmpFile));
        outputs.push({ ...report, ...(out.rank !== undefined ? { rank: out.rank } : {}) });
        if (!report.verified) break;
      }
    }
    const casts = cast.summary();
    return {
      source, plan, outputs, verified: outputs.length === plan.outputs.length && outputs.every((o) => o.verified), seconds: (performance.now() - t0) / 1000, bytesCopied: done,
      ...(casts ? { cast: casts } : {}),
    };
  } finally {
    ck.close();
  }
}

/** torch names the archive's top folder after the file name without its extension. */
export function archiveNameFor(file: string): string {
  const base = path.basename(file);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  return stem.replace(/[^\w.-]/g, '_') || 'archive';
}

function totalBytes(ck: Checkpoint): number {
  const seen = new Set<object>();
  let n = 0;
  for (const t of ck.tensors) {
    if (!t.tensor.storage) continue;
    const s = rootStorage(t.tensor.storage);
    if (seen.has(s)) continue;
    seen.add(s);
    n += s.nbytes;
  }
  return n;
}

function statOf(file: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (e) {
    throw new CheckpointError('io', `${file}: ${(e as Error).message.split(',')[0]}`, file);
  }
}
