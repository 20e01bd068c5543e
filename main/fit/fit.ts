import type { FitAmbiguity, FitReport, FitRule, KeyShape } from '../../shared/fit.ts';
import { pathText } from '../checkpoint/tree.ts';
import { canonicalKeys } from './canonical-keys.ts';
import { matchStructure } from './match-structure.ts';
import type { ModelState } from './model-state.ts';
import { shapesLoad, strictLoad } from './strict-load.ts';
import type { FitTarget } from './target.ts';

/**
 * Fits a checkpoint's model state dict to a target model: what strict loading says now, the
 * rules that make it load (wrapper prefixes, renames by structure, heads of another size
 * excluded), and what it says after them. Pure: keys and shapes only, no tensor bytes.
 */
export function fitState(sourceFile: string, source: ModelState, target: FitTarget): FitReport {
  const className = target.className;
  const before = strictLoad(source, target.entries, className);
  const ck = source.entries;
  const tgt = target.entries;
  const rules: FitRule[] = [];
  const notes: string[] = [];
  if (source.role.path.length || source.role.kind === 'module') {
    const where = source.role.path.length ? pathText(source.role.path) : 'the top level';
    rules.push({
      kind: 'unwrap',
      from: pathText(source.role.path),
      keys: ck.length,
      text:
        source.role.kind === 'module'
          ? `take the state dict of the pickled ${source.role.className ?? 'module'} at ${where}`
          : `take the model state dict at ${where}; the rest of the container is left out`,
    });
  }
  const canon = canonicalKeys(
    ck.map((e) => e.key),
    tgt.map((e) => e.key),
  );
  rules.push(...canon.rules);

  // exact pairs in the common form
  const modelAt = new Map<string, number>();
  canon.model.forEach((k, j) => modelAt.set(k, modelAt.has(k) ? -1 : j));
  const pairs = new Map<number, number>();
  canon.checkpoint.forEach((k, i) => {
    const j = modelAt.get(k);
    if (j !== undefined && j >= 0) pairs.set(i, j);
  });
  // heads of another size: the same name, other shapes
  const heads: number[] = [];
  for (const [i, j] of pairs) {
    const a = ck[i]!.shape;
    const b = tgt[j]!.shape;
    if (a && b && !shapesLoad(a, b)) heads.push(i);
  }
  const leftCk = ck.map((_, i) => i).filter((i) => !pairs.has(i));
  const pairedModel = new Set(pairs.values());
  const leftModel = tgt.map((_, j) => j).filter((j) => !pairedModel.has(j));
  const structure = matchStructure(ck, canon.checkpoint, leftCk, tgt, leftModel);
  for (const [i, j] of structure.pairs) pairs.set(i, j);
  rules.push(...structure.rules);
  const ambiguous: FitAmbiguity[] = structure.ambiguous;
  const inAmbiguity = new Set<string>();
  for (const a of ambiguous) for (const p of a.checkpoint) inAmbiguity.add(p);

  const fill: KeyShape[] = [];
  const headKeys = new Set<string>();
  for (const i of heads) {
    const j = pairs.get(i)!;
    pairs.delete(i);
    const t = tgt[j]!;
    headKeys.add(t.key);
    rules.push({
      kind: 'exclude-head',
      from: ck[i]!.key,
      to: t.key,
      keys: 1,
      text: `leave out ${ck[i]!.key}: [${ck[i]!.shape!.join(', ')}] in the checkpoint, [${t.shape!.join(', ')}] in the model (a head of another size)`,
    });
    if (target.tensors?.has(t.key)) fill.push(t);
  }
  if (fill.length)
    rules.push({
      kind: 'fill-from-target',
      keys: fill.length,
      text: `${fill.map((f) => f.key).join(', ')} keep the model's own values, taken from ${target.info.file}`,
    });

  // every key's fate
  const mapping = ck.map((e, i) => {
    const j = pairs.get(i);
    return { from: e.key, to: j === undefined ? null : tgt[j]!.key };
  });
  const headSet = new Set(heads);
  const dropped = mapping.filter((m, i) => m.to === null && !headSet.has(i) && !isAmbiguous(canon.checkpoint[i]!, inAmbiguity));
  if (dropped.length) {
    rules.push({
      kind: 'drop-unexpected',
      keys: dropped.length,
      text: `leave out ${dropped.length} key${dropped.length === 1 ? '' : 's'} the model does not have: ${listText(dropped.map((d) => d.from))}`,
    });
  }
  // ambiguous keys stay as they are, so strict loading still names them
  for (let i = 0; i < mapping.length; i++)
    if (mapping[i]!.to === null && isAmbiguous(canon.checkpoint[i]!, inAmbiguity)) mapping[i] = { from: ck[i]!.key, to: ck[i]!.key };

  const afterEntries: KeyShape[] = [];
  for (let i = 0; i < mapping.length; i++) if (mapping[i]!.to !== null) afterEntries.push({ key: mapping[i]!.to!, shape: ck[i]!.shape });
  afterEntries.push(...fill);
  const after = strictLoad({ entries: afterEntries, versions: mappedVersions(source.versions, mapping) }, tgt, className);
  const fits = after.message === null && ambiguous.length === 0;
  const loadsNonStrict =
    !fits && ambiguous.length === 0 && after.unexpected.length === 0 && after.mismatched.length === 0 && after.missing.every((k) => headKeys.has(k));
  if (loadsNonStrict) notes.push(`load it with strict=False: ${listText(after.missing)} keep the model's own initialisation`);
  if (before.message === null) notes.push('it loads with strict=True as it is');
  return {
    source: sourceFile,
    target: target.info,
    missing: before.missing,
    unexpected: before.unexpected,
    mismatched: before.mismatched,
    message: before.message,
    rules,
    ambiguous,
    after,
    fits,
    loadsNonStrict,
    mapping,
    notes,
  };
}

function isAmbiguous(canonicalKey: string, modules: Set<string>): boolean {
  const dot = canonicalKey.lastIndexOf('.');
  return modules.has(dot < 0 ? '(root)' : canonicalKey.slice(0, dot)) || modules.has(canonicalKey);
}

/** `_metadata` versions under the new module paths (a module keeps its version when its keys move). */
export function mappedVersions(versions: Map<string, number> | null, mapping: { from: string; to: string | null }[]): Map<string, number> | null {
  if (!versions) return null;
  const out = new Map<string, number>();
  for (const m of mapping) {
    if (m.to === null) continue;
    const from = modulePath(m.from);
    const v = versions.get(from);
    if (v !== undefined) out.set(modulePath(m.to), v);
  }
  return out;
}

export function modulePath(key: string): string {
  const dot = key.lastIndexOf('.');
  return dot < 0 ? '' : key.slice(0, dot);
}

export function listText(keys: string[], max = 6): string {
  return keys.length <= max ? keys.join(', ') : `${keys.slice(0, max).join(', ')} and ${keys.length - max} more`;
}
