import type { ConversionReport, Progress } from '../../shared/convert.ts';
import type { FitReport, FitTargetInput } from '../../shared/fit.ts';
import { NO_RULES, type ConversionRules } from '../../shared/presets.ts';
import { detached } from '../convert/build-output.ts';
import { convertFile } from '../convert/convert-file.ts';
import { fail } from '../errors.ts';
import { PyDict, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { fitState, listText, mappedVersions } from './fit.ts';
import { modelState, otherModelRoles } from './model-state.ts';
import { fitTargetFromText, readFitTarget, type FitTarget } from './target.ts';
import { pathText } from '../checkpoint/tree.ts';
import { strictLoad } from './strict-load.ts';

export type Rename = { pattern: string; replacement: string };

/**
 * Fits a checkpoint to a target without writing anything (`ckpt fit`). The user's renames, if
 * any, apply to the checkpoint's keys first; the mapping still starts from the original keys.
 */
export function fitCheckpoint(source: string, targetFile: string | FitTargetInput, renames: Rename[] = []): FitReport {
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
      return report;
    } finally {
      target.close();
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
}

/**
 * `ckpt convert <ckpt> --fit <target> -o OUT`: applies the fit's rules and writes the model state
 * dict alone, in the model's key order, on the CPU, verified like every conversion. Heads left out
 * take the target's own tensors when the target is a checkpoint, so the result loads with
 * strict=True; refused when the fit is ambiguous or something else would still not load.
 */
export async function convertToFit(source: string, targetFile: string, opts: FitConvertOptions): Promise<{ fit: FitReport; report: ConversionReport }> {
  const fit = fitCheckpoint(source, targetFile, opts.renames ?? []);
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
    fail('usage', `${source}: no rules make it load into ${targetFile} (${what}); \`ckpt fit\` shows why; nothing was written`, source);
  }
  const ck = openCheckpoint(source, { shardedRanks: 'consolidate' });
  let role;
  try {
    role = modelState(ck).role;
  } finally {
    ck.close();
  }
  const rules: ConversionRules = {
    ...NO_RULES,
    unwrap: role.kind === 'state-dict',
    exportStateDict: role.kind === 'module',
    mapLocation: [{ from: '*', to: 'cpu' }],
    keyMap: fit.mapping,
  };
  const target = readFitTarget(
    targetFile,
    fit.mapping.map((m) => ({ key: m.from, shape: null })),
  );
  try {
    const report = await convertFile(source, {
      rules,
      output: opts.output,
      force: opts.force,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      adjustTree: (tree) => inModelOrder(tree, target, fit),
    });
    return { fit, report };
  } finally {
    target.close();
  }
}

/** The state dict with its keys in the model's order and the excluded heads' own tensors added. */
function inModelOrder(tree: PyValue, target: FitTarget, fit: FitReport): PyValue {
  if (!(tree instanceof PyDict)) return tree;
  const filled = new Set(fit.rules.filter((r) => r.kind === 'exclude-head' && r.to && target.tensors?.has(r.to)).map((r) => r.to!));
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
