import type { FitEdit, FitReport, KeyShape } from '../../shared/fit.ts';
import { fail } from '../errors.ts';
import { listText, mappedVersions, modulePath } from './fit.ts';
import type { ModelState } from './model-state.ts';
import { strictLoad } from './strict-load.ts';
import type { FitTarget } from './target.ts';

/** A fit with the user's row edits applied, and the model keys whose own tensors fill the gaps. */
export interface EditedFit {
  fit: FitReport;
  /** model keys written from the target's own tensors (excluded heads, keys an edit left without a source) */
  filled: Set<string>;
}

/**
 * Applies the app's row edits (accept or reject a rename, another model key, a key left out) to a
 * fit, and works out again what `load_state_dict(strict=True)` says after them. A model key no
 * row maps to any more is filled from the target's own tensor when the target is a checkpoint (as
 * an excluded head is); an ambiguity is settled once every row of its modules was edited.
 */
export function applyFitEdits(fit: FitReport, source: ModelState, target: FitTarget, edits: FitEdit[]): EditedFit {
  const byKey = new Map(fit.mapping.map((m, i) => [m.from, i]));
  const mapping = fit.mapping.map((m) => ({ ...m }));
  const edited = new Set<number>();
  for (const e of edits) {
    const i = byKey.get(e.from);
    if (i === undefined) fail('usage', `${fit.source}: has no key '${e.from}' to edit`, fit.source);
    mapping[i]!.to = e.to === '' ? null : e.to;
    edited.add(i);
  }
  const seen = new Map<string, string>();
  for (const m of mapping) {
    if (m.to === null) continue;
    const other = seen.get(m.to);
    if (other !== undefined)
      fail('usage', `${fit.source}: '${other}' and '${m.from}' both go to '${m.to}'; give one of them another key or leave it out`, fit.source);
    seen.set(m.to, m.from);
  }
  const headFill = new Set(fit.rules.filter((r) => r.kind === 'exclude-head' && r.to).map((r) => r.to!));
  const filled = new Set<string>();
  for (const t of target.entries) if (!seen.has(t.key) && target.tensors?.has(t.key) && (headFill.has(t.key) || edits.length)) filled.add(t.key);
  const entries: KeyShape[] = [];
  source.entries.forEach((e, i) => {
    if (mapping[i]!.to !== null) entries.push({ key: mapping[i]!.to!, shape: e.shape });
  });
  for (const t of target.entries) if (filled.has(t.key)) entries.push(t);
  const after = strictLoad({ entries, versions: mappedVersions(source.versions, mapping) }, target.entries, target.className);
  const rowsOf = (modules: string[]): number[] => mapping.flatMap((m, i) => (modules.includes(modulePath(m.from)) || modules.includes(m.from) ? [i] : []));
  const ambiguous = fit.ambiguous.filter((a) => !rowsOf(a.checkpoint).every((i) => edited.has(i)));
  const changes = [...edited].filter((i) => mapping[i]!.to !== fit.mapping[i]!.to);
  const rules = [...fit.rules.filter((r) => r.kind !== 'fill-from-target')];
  if (changes.length)
    rules.push({
      kind: 'rename',
      keys: changes.length,
      confidence: 1,
      basis: [],
      text: `your edits: ${changes.map((i) => `${mapping[i]!.from} → ${mapping[i]!.to ?? '(left out)'}`).join(', ')}`,
    });
  if (filled.size)
    rules.push({ kind: 'fill-from-target', keys: filled.size, text: `${listText([...filled])} keep the model's own values, taken from ${target.info.file}` });
  const fits = after.message === null && ambiguous.length === 0;
  return {
    fit: { ...fit, mapping, rules, ambiguous, after, fits, loadsNonStrict: fits ? false : fit.loadsNonStrict && !edits.length },
    filled,
  };
}
