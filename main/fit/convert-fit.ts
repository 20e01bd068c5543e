import type { Progress } from '../../shared/convert.ts';
import type { ConversionResult } from '../convert/packed-report.ts';
import type { FitEdit, FitReport, FitTargetInput } from '../../shared/fit.ts';
import type { Role } from '../checkpoint/roles.ts';
import { applyFitEdits } from './edit-mapping.ts';
import { NO_RULES, type ConversionRules } from '../../shared/presets.ts';
import { detached } from '../convert/build-output.ts';
import { convertFile } from '../convert/convert-file.ts';
import { fail } from '../errors.ts';
import { PyDict, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { fitState, listText, mappedVersions } from './fit.ts';
import { modelState, otherModelRoles, type ModelState } from './model-state.ts';
import { fitTargetFromText, readFitTarget, type FitTarget } from './target.ts';
import { pathText } from '../checkpoint/tree.ts';
import { strictLoad } from './strict-load.ts';

export type Rename = { pattern: string; replacement: string };

/**
 * Fits a checkpoint to a target without writing anything (`ckpt fit`). The user's renames, if
 * any, apply to the checkpoint's keys first; the mapping still starts from the original keys.
 */
export function fitCheckpoint(source: string, targetFile: string | FitTargetInput, renames: Rename[] = [], edits: FitEdit[] = []): FitReport {
  const { report, original, target } = fitOpened(source, targetFile, renames);
  try {
    return edits.length ? applyFitEdits(report, original, target, edits).fit : report;
  } finally {
    target.close();
  }
}

/**
 * The fit (before any row edits), the checkpoint's own model state, and the target, left open
 * for the caller to close: `convertToFit` writes from the same reading of the target.
 */
function fitOpened(source: string, targetFile: string | FitTargetInput, renames: Rename[]): { report: FitReport; original: ModelState; target: FitTarget } {
  const ck = openCheckpoint(source, { shardedRanks: 'consolidate' });
  try {
    const original = modelState(ck);
    const res = renames.map((r) => ({ re: new RegExp(r.pattern), to: r.replacement }));
    const renamed = (k: string): string => res.reduce((acc, r) => acc.replace(r.re, r.to), k);
    const state = res.length
      ? {
          ...original,
          entries: original.entries.map((e) => ({ key: renamed(e.key), shape: e.shape })),
          versions: mappedVersions(
            original.versions,
            original.entries.map((e) => ({ from: e.key, to: renamed(e.key) })),
          ),
        }
      : original;
    if (new Set(state.entries.map((e) => e.key)).size !== state.entries.length)
      fail('usage', `${source}: --rename makes two keys equal; make the pattern narrower`, source);
    const target =
      typeof targetFile === 'string'
        ? readFitTarget(targetFile, original.entries)
        : 'file' in targetFile
          ? readFitTarget(targetFile.file, original.entries)
          : fitTargetFromText('(pasted text)', targetFile.text, original.entries);
    try {
      const report = fitState(source, state, target);
      if (res.length) {
        const now = strictLoad(original, target.entries, target.className);
        Object.assign(report, { missing: now.missing, unexpected: now.unexpected, mismatched: now.mismatched, message: now.message });
        report.mapping = report.mapping.map((m, i) => ({ from: original.entries[i]!.key, to: m.to }));
        report.rules.unshift({
          kind: 'rename',
          keys: original.entries.filter((e) => renamed(e.key) !== e.key).length,
          basis: [],
          confidence: 1,
          text: `your renames: ${renames.map((r) => `'${r.pattern}' → '${r.replacement}'`).join(', ')}`,
        });
      }
      const folded = target.entries.filter((e) => e.key.startsWith('onnx::')).length;
      if (target.info.kind === 'onnx' && folded)
        report.notes.push(
          `${folded} of the ONNX graph's initializers (onnx::…) are constants the exporter made, e.g. BatchNorm folded into Conv: they have no state-dict key; export with do_constant_folding=False, or fit to a checkpoint of the model`,
        );
      for (const r of otherModelRoles(ck, state.role))
        report.notes.push(
          `the checkpoint also holds a state dict of the same size at ${pathText(r.path) || 'the top level'}; the one at ${pathText(state.role.path) || 'the top level'} was used`,
        );
      return { report, original, target };
    } catch (e) {
      target.close();
      throw e;
    }
  } finally {
    ck.close();
  }
}

export interface FitConvertOptions {
  output: string;
  force: boolean;
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
  renames?: Rename[];
  /** the app's row edits of the mapping (applyFitEdits) */
  edits?: FitEdit[];
}

/**
 * `ckpt convert <ckpt> --fit <target> -o OUT`: applies the fit's rules and writes the model state
 * dict alone, in the model's key order, on the CPU, verified like every conversion. Heads left out
 * take the target's own tensors when the target is a checkpoint, so the result loads with
 * strict=True; refused when the fit is ambiguous or something else would still not load.
 */
export async function convertToFit(
  source: string,
  targetFile: string | FitTargetInput,
  opts: FitConvertOptions,
): Promise<{ fit: FitReport; report: ConversionResult }> {
  const edits = opts.edits ?? [];
  // the source and the target are read once for the fit; convertFile reads the source again to write it
  const { report: proposed, original: state, target } = fitOpened(source, targetFile, opts.renames ?? []);
  try {
    const { fit, filled } = edits.length ? applyFitEdits(proposed, state, target, edits) : { fit: proposed, filled: headsFilled(proposed, target) };
    return { fit, report: await writeFitted(source, targetFile, fit, filled, state.role, target, opts) };
  } finally {
    target.close();
  }
}

/** The excluded heads whose own tensors the target has: written from the target so the file loads with strict=True. */
function headsFilled(fit: FitReport, target: FitTarget): Set<string> {
  return new Set(fit.rules.filter((r) => r.kind === 'exclude-head' && r.to && target.tensors?.has(r.to)).map((r) => r.to!));
}

async function writeFitted(
  source: string,
  targetFile: string | FitTargetInput,
  fit: FitReport,
  filled: Set<string>,
  role: Role,
  target: FitTarget,
  opts: FitConvertOptions,
): Promise<ConversionResult> {
  const targetName = typeof targetFile === 'string' ? targetFile : 'file' in targetFile ? targetFile.file : 'the pasted model';
  if (fit.ambiguous.length)
    fail(
      'usage',
      `${source}: ${fit.ambiguous[0]!.text}${fit.ambiguous.length > 1 ? ` (and ${fit.ambiguous.length - 1} more ambiguities)` : ''}; nothing was written`,
      source,
    );
  if (!fit.fits && !fit.loadsNonStrict) {
    const after = fit.after;
    const what = after.missing.length
      ? `missing ${listText(after.missing, 3)}`
      : after.mismatched.length
        ? `size mismatch for ${listText(
            after.mismatched.map((m) => m.key),
            3,
          )}`
        : `unexpected ${listText(after.unexpected, 3)}`;
    fail(
      'usage',
      opts.edits?.length
        ? `${source}: with your edits it does not load into ${targetName} (${what}); nothing was written`
        : `${source}: no rules make it load into ${targetName} (${what}); \`ckpt fit\` shows why; nothing was written`,
      source,
    );
  }
  const rules: ConversionRules = {
    ...NO_RULES,
    unwrap: role.kind === 'state-dict',
    exportStateDict: role.kind === 'module',
    mapLocation: [{ from: '*', to: 'cpu' }],
    keyMap: fit.mapping,
  };
  return await convertFile(source, {
    rules,
    output: opts.output,
    force: opts.force,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    adjustTree: (tree) => inModelOrder(tree, target, filled),
  });
}

/** The state dict with its keys in the model's order and the `filled` keys' own tensors (excluded heads) added from the target. */
function inModelOrder(tree: PyValue, target: FitTarget, filled: Set<string>): PyValue {
  if (!(tree instanceof PyDict)) return tree;
  const out = new PyDict(true);
  out.attrs = tree.attrs;
  for (const { key } of target.entries) {
    const have = tree.get(key);
    if (have instanceof TorchTensor) out.set(key, have);
    else if (filled.has(key)) out.set(key, detached(target.tensors!.get(key)!));
  }
  for (const [k, v] of tree.entries) if (!out.has(k)) out.set(k, v);
  return out;
}
