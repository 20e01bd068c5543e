import * as fs from 'node:fs';
import { refusePlainPickle } from './plain-pickle.ts';
import * as path from 'node:path';
import type { ConversionPlan, Progress } from '../../shared/convert.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { distinctStorages, type Checkpoint } from '../checkpoint/inspect.ts';
import { CheckpointError, fail } from '../errors.ts';
import { writeCheckedAtomically } from '../io/atomic-file.ts';
import { releaseReadBack } from '../io/byte-verifier.ts';
import { StorageReadBack } from './storage-read-back.ts';
import { buildOutputTree, planCoverageProblem } from './build-output.ts';
import { walkTensors } from '../checkpoint/tree.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import { deviceMapper } from './key-rules.ts';
import { mapRoles, planConversion, rulesFor } from './plan.ts';
import { scanFile } from '../checkpoint/scan/scan-file.ts';
import type { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import { makeCodeFree } from './code-free-output.ts';
import { verifyOutput } from './read-back.ts';
import { verifyExistingOutput } from './existing-output.ts';
import { castTree } from './cast-tree.ts';
import { collectGarbageOfPhase } from './collect-garbage.ts';
import { checkFlatSlices } from './slice-check.ts';
import { weightsOnlyRefusals, writeTorchCheckpoint } from './write-checkpoint.ts';
import type { OutputResult } from './read-back-match.ts';
import type { ConversionResult } from './packed-report.ts';

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
  /** last changes to the object to write (`--fit` adds the model's own head tensors and orders keys) */
  adjustTree?(tree: PyValue): PyValue;
  /**
   * A batch re-run: when every output exists already and is exactly what this conversion writes
   * (verified against the source), keep them and write nothing; the report says `adopted`.
   */
  keepVerifiedExisting?: boolean;
}

/** Plans a conversion of one file without writing anything (the dry run and the UI preview). */
export function previewConversion(source: string, rules: ConversionRules, output: string | null): ConversionPlan {
  const ck = openCheckpoint(source, { shardedRanks: 'consolidate' });
  try {
    refusePlainPickle(ck, source);
    return planConversion(ck, rulesFor(ck, rules), output);
  } finally {
    ck.close();
  }
}

/**
 * Converts one checkpoint: plan, then for each output build the object, write it atomically,
 * re-open it and verify every tensor against the source. The source is only read; if it changes
 * while being read, the conversion fails and nothing is left behind.
 */
export async function convertFile(source: string, opts: ConvertOptions): Promise<ConversionResult> {
  const t0 = performance.now();
  const before = statOf(source);
  const ck = openCheckpoint(source, { shardedRanks: 'consolidate' });
  try {
    refusePlainPickle(ck, source);
    collectGarbageOfPhase(ck.tensors.length); // the reading's garbage, before the conversion adds its own
    const rules = rulesFor(ck, opts.rules);
    const roles = mapRoles(ck, rules);
    const plan = planConversion(ck, rules, opts.output, roles);
    if (plan.errors.length) fail('usage', `${source}: ${plan.errors[0]}`, source);
    const existing = plan.outputs.find((o) => o.exists);
    if (existing && !opts.force && !opts.keepVerifiedExisting) fail('exists', `${existing.file} already exists; pass --force to overwrite it`, existing.file);
    const sec = ck.report.security;
    if (sec.verdict === 'dangerous' && !rules.unwrap && !rules.exportStateDict) {
      const g = sec.globals.find((x) => x.class === 'dangerous');
      fail(
        'unsupported',
        `${source}: the source is dangerous (${g?.example ?? g?.name ?? 'see ckpt scan'}); nothing was written; add --unwrap or --export-state-dict to take only its tensors`,
        source,
      );
    }
    const built = buildOutputTree(ck, rules, roles);
    const codeFree = makeCodeFree(opts.adjustTree ? opts.adjustTree(built) : built, !!rules.keepObjects);
    if (codeFree.blocked) fail('unsupported', `${source}: ${codeFree.blocked}; nothing was written`, source);
    const cast = castTree(codeFree.tree, rules);
    const tree = cast.tree;
    const leftBehind = sec.globals.filter((g) => g.class !== 'safe' && !codeFree.named.has(g.name)).map((g) => g.name);
    const uncovered = planCoverageProblem(tree, roles, rules);
    if (uncovered) fail('internal', `${source}: ${uncovered}; nothing was written`, source);
    // every tensor of the output at every path: for the checks below and the read-back of each output
    // (the source's own walk when the output is the source's tree, as a state dict kept whole is)
    const plannedTensors = tree === ck.reading.root && !ck.reading.torchscript?.constants ? ck.tensors : walkTensors(tree);
    // The output's storages that more than one of its tensor paths uses: the writer needs no
    // lookup for the rest. Only where every tensor's recipe is the plain one (made per read): a
    // recipe of its own can hold another tensor (sparse, nested), which the walk does not count.
    const plainRecipes = plannedTensors.every((t) => t.tensor.argsAreMadePerRead);
    const sharedStorages = !plainRecipes ? undefined : plannedTensors === ck.tensors ? ck.sharedStorages : distinctStorages(plannedTensors).shared;
    if (ck.tensors.length && !plannedTensors.length) fail('usage', `${source}: the rules leave no tensor to write; nothing was written`, source);
    const checkCancelled = (): void => {
      if (opts.signal?.aborted) throw new CheckpointError('cancelled', `${source}: conversion cancelled; nothing was written`, source);
    };
    const keptByWriter = new Set<string>();
    const onWeightsOnlyRefusal = weightsOnlyRefusals(source, !!rules.keepObjects, keptByWriter);
    if (existing && opts.keepVerifiedExisting) {
      const kept: OutputResult[] = [];
      for (const out of plan.outputs) {
        const location = deviceMapper(rules, out.rank ?? 0);
        const r = out.exists
          ? await verifyExistingOutput(out.file, tree, {
              archiveName: archiveNameFor(out.file),
              location: (s) => location(s.location),
              checkCancelled,
              onWeightsOnlyRefusal,
            })
          : null;
        if (!r) break;
        kept.push({ ...r, ...(out.rank !== undefined ? { rank: out.rank } : {}) });
      }
      if (kept.length === plan.outputs.length) return { source, plan, outputs: kept, verified: true, seconds: (performance.now() - t0) / 1000, bytesCopied: 0 };
      if (!opts.force) fail('exists', `${existing.file} already exists and is not what this conversion writes; pass --force to overwrite it`, existing.file);
    }
    const total = totalBytes(ck) * plan.outputs.length;
    let done = 0;
    const outputs: OutputResult[] = [];
    {
      for (const out of plan.outputs) {
        const location = deviceMapper(rules, out.rank ?? 0);
        const readBack = new StorageReadBack();
        const label = path.basename(out.file); // once, not per storage (500,000 progress calls)
        let tmpFile = '';
        const { value: report } = await writeCheckedAtomically(
          out.file,
          opts.force,
          (fd, tmp) =>
            writeTorchCheckpoint(fd, ((tmpFile = tmp), tree), {
              archiveName: archiveNameFor(out.file),
              location: (s) => location(s.location),
              checkCancelled,
              onWeightsOnlyRefusal,
              onBytes: (n) => {
                done += n;
                opts.onProgress?.({ done, total, unit: 'bytes', label });
              },
              // each storage is read back and checked in a helper thread while the next is copied
              onStorageWritten: (w) => readBack.add(tmp, w),
              ...(sharedStorages ? { sharedStorages } : {}),
            }),
          async (tmp, written) => {
            collectGarbageOfPhase(ck.tensors.length); // the write's garbage, before the read-back adds its own
            const changed = statOf(source);
            if (changed.size !== before.size || changed.mtimeMs !== before.mtimeMs) {
              fail('io', `${source} changed while it was being converted; nothing was written, run the conversion again`, source);
            }
            // The written pickle itself, read as torch.load would: nothing outside the allowlist unless
            // --keep-objects. The read-back's own unpickling of data.pkl carries the scan (one walk).
            const loadsWeightsOnly = (scans: PrescannedPickles): void => {
              const wo = scanFile(tmp, scans).weightsOnly?.byTorch['2.13'];
              if (!rules.keepObjects && !wo?.loads)
                fail(
                  'internal',
                  `${out.file}: the written file would not load with torch.load(weights_only=True) (${wo?.refusal}); nothing was written`,
                  out.file,
                );
            };
            const r = await verifyOutput(tmp, out.file, tree, written.storages, (s) => location(s.location), readBack, loadsWeightsOnly, plannedTensors);
            if (r.verified) checkFlatSlices(tree, r, plannedTensors);
            return { value: { ...r, tail: written.tail }, publish: r.verified };
          },
          { syncFolder: opts.syncFolder ?? true, ...(opts.onWaiting ? { onWritten: opts.onWaiting } : {}) },
        ).finally(() => releaseReadBack(tmpFile));
        outputs.push({ ...report, ...(out.rank !== undefined ? { rank: out.rank } : {}) });
        if (!report.verified) break;
      }
    }
    const casts = cast.summary();
    collectGarbageOfPhase(ck.tensors.length); // the write's and read-back's, before the report is packed and sent
    return {
      source,
      plan,
      outputs,
      verified: outputs.length === plan.outputs.length && outputs.every((o) => o.verified),
      seconds: (performance.now() - t0) / 1000,
      bytesCopied: done,
      codeFree: { converted: codeFree.converted, kept: [...codeFree.kept, ...keptByWriter], leftBehind },
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

/** Bytes to copy: each storage once (the report's distinct storages). */
function totalBytes(ck: Checkpoint): number {
  return ck.report.totals.storageBytes;
}

function statOf(file: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (e) {
    throw new CheckpointError('io', `${file}: ${(e as Error).message.split(',')[0]}`, file);
  }
}
