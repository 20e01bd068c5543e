import type { FitRule } from '../../shared/fit.ts';

/**
 * Wrapper prefixes that training code puts in front of a model's keys: DataParallel/DDP
 * (`module.`), torch.compile (`_orig_mod.`), Lightning (`model.`, and `_forward_module.` from
 * Fabric/strategies), activation checkpointing (`_checkpoint_wrapped_module.`), FSDP
 * (`_fsdp_wrapped_module.`), and `backbone.` of detection/segmentation models around a classifier.
 */
export const LEADING_WRAPPERS = [
  'module.',
  '_orig_mod.',
  '_forward_module.',
  'model.',
  '_checkpoint_wrapped_module.',
  '_fsdp_wrapped_module.',
  'backbone.',
] as const;
/** Wrapper modules that also appear inside a model, around one layer (checkpoint_wrapper, FSDP auto-wrap, a compiled block). */
export const INNER_WRAPPERS = ['_checkpoint_wrapped_module', '_fsdp_wrapped_module', '_orig_mod', 'module', '_forward_module'] as const;

type Side = 'checkpoint' | 'model';
interface Op {
  side: Side;
  kind: 'lead' | 'common' | 'inner';
  part: string;
}

/**
 * Brings the checkpoint's keys and the model's keys to a common form by removing wrapper
 * prefixes, a prefix every key of one side shares, and wrapper modules inside keys, one step at a
 * time, taking at each step the change that makes the most keys equal (and never one that makes
 * two keys of one side collide). A prefix removed from the model's side is a prefix the
 * checkpoint's keys gain. Returns the canonical keys of both sides and the steps as rules.
 */
export function canonicalKeys(checkpoint: string[], model: string[]): { checkpoint: string[]; model: string[]; rules: FitRule[] } {
  let cs = checkpoint;
  let ct = model;
  let score = matches(cs, ct);
  const rules: FitRule[] = [];
  for (let round = 0; round < 12 && score < Math.min(cs.length, ct.length); round++) {
    let best: { op: Op; keys: string[]; changed: number; score: number } | null = null;
    const distinct = { checkpoint: new Set(cs).size, model: new Set(ct).size };
    for (const op of [...candidates(cs, 'checkpoint'), ...candidates(ct, 'model')]) {
      const before = op.side === 'checkpoint' ? cs : ct;
      const applied = apply(op, before);
      if (!applied || new Set(applied.keys).size !== distinct[op.side]) continue;
      const s = op.side === 'checkpoint' ? matches(applied.keys, ct) : matches(cs, applied.keys);
      if (s > score && (!best || s > best.score)) best = { op, ...applied, score: s };
    }
    if (!best) break;
    if (best.op.side === 'checkpoint') cs = best.keys;
    else ct = best.keys;
    score = best.score;
    rules.push(ruleFor(best.op, best.changed));
  }
  return { checkpoint: cs, model: ct, rules };
}

function matches(a: string[], b: string[]): number {
  const set = new Set(b);
  let n = 0;
  for (const k of a) if (set.has(k)) n++;
  return n;
}

function candidates(keys: string[], side: Side): Op[] {
  const ops: Op[] = [];
  for (const w of LEADING_WRAPPERS) if (keys.some((k) => k.startsWith(w))) ops.push({ side, kind: 'lead', part: w });
  const common = commonDottedPrefix(keys);
  if (common && !(LEADING_WRAPPERS as readonly string[]).includes(common)) ops.push({ side, kind: 'common', part: common });
  for (const w of INNER_WRAPPERS) if (keys.some((k) => k.includes(`.${w}.`))) ops.push({ side, kind: 'inner', part: w });
  return ops;
}

/** The longest prefix ending in a dot that every key has, with something left after it. */
export function commonDottedPrefix(keys: string[]): string {
  if (!keys.length) return '';
  let p = keys[0]!.slice(0, keys[0]!.lastIndexOf('.') + 1);
  for (const k of keys) {
    while (p && !(k.startsWith(p) && k.length > p.length)) p = p.slice(0, p.lastIndexOf('.', p.length - 2) + 1);
    if (!p) return '';
  }
  return p;
}

function apply(op: Op, keys: string[]): { keys: string[]; changed: number } | null {
  let changed = 0;
  const out = keys.map((k) => {
    let n = k;
    if (op.kind === 'inner') {
      const parts = k.split('.');
      const kept = parts.filter((p, i) => i === 0 || i === parts.length - 1 || p !== op.part);
      n = kept.join('.');
    } else if (k.startsWith(op.part) && k.length > op.part.length) n = k.slice(op.part.length);
    if (n !== k) changed++;
    return n;
  });
  return changed ? { keys: out, changed } : null;
}

function ruleFor(op: Op, changed: number): FitRule {
  const n = `${changed} key${changed === 1 ? '' : 's'}`;
  if (op.kind === 'inner') {
    return op.side === 'checkpoint'
      ? { kind: 'remove-component', from: `${op.part}.`, keys: changed, text: `remove the wrapper '${op.part}.' from inside ${n}` }
      : { kind: 'add-component', from: `${op.part}.`, keys: changed, text: `insert '${op.part}.' inside ${n}, where the model has it` };
  }
  const wrappers = op.part
    .split('.')
    .slice(0, -1)
    .every((c) => (INNER_WRAPPERS as readonly string[]).includes(c) || c === 'model' || c === 'backbone');
  const what = op.kind === 'lead' ? 'wrapper prefix' : wrappers ? 'stacked wrapper prefixes' : 'common prefix';
  return op.side === 'checkpoint'
    ? { kind: 'strip-prefix', from: op.part, keys: changed, text: `remove the ${what} '${op.part}' from ${n}` }
    : { kind: 'add-prefix', from: op.part, keys: changed, text: `add the prefix '${op.part}' to ${n}, as the model has it` };
}
