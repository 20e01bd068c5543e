import type { FitAmbiguity, FitRule, KeyShape } from '../../shared/fit.ts';

/** A module (or, in the second pass, a single key) still without a counterpart. */
interface Unit {
  /** module path as the side names it ('' for the root) */
  path: string;
  /** indices into the side's entries, by leaf name */
  byLeaf: Map<string, number>;
  signature: string;
  order: number;
  words: Set<string>;
}

export interface StructureMatch {
  /** checkpoint entry index → model entry index */
  pairs: Map<number, number>;
  rules: FitRule[];
  ambiguous: FitAmbiguity[];
}

/** How many order-paired candidates each is compared with by name, at most (keeps 10,000 keys fast). */
const NAME_WINDOW = 4;

/**
 * Pairs the checkpoint's leftover keys with the model's by structure: modules whose parameter
 * names and shapes are the same. A signature held by one module on each side is a match; n
 * modules on each side pair in order (the order `state_dict()` lists them, which is the order
 * the modules were registered) unless their names say otherwise; other counts pair only where
 * the names single out one candidate. Anything else is ambiguous and is reported, never guessed.
 * Then the same again key by key for what is left (a module that gained or lost a buffer).
 */
export function matchStructure(checkpoint: KeyShape[], ckNames: string[], left: number[], model: KeyShape[], tgtLeft: number[]): StructureMatch {
  const result: StructureMatch = { pairs: new Map(), rules: [], ambiguous: [] };
  const blocked = new Set<number>();
  for (const level of ['module', 'key'] as const) {
    const a = units(
      ckNames,
      checkpoint,
      left.filter((i) => !result.pairs.has(i) && !blocked.has(i)),
      level,
    );
    const used = new Set(result.pairs.values());
    const b = units(
      model.map((e) => e.key),
      model,
      tgtLeft.filter((j) => !used.has(j)),
      level,
    );
    pairGroups(
      a,
      b,
      result,
      blocked,
      level,
      checkpoint.map((e) => e.key),
      model.map((e) => e.key),
    );
  }
  return result;
}

function units(names: string[], entries: KeyShape[], indices: number[], level: 'module' | 'key'): Unit[] {
  const byPath = new Map<string, Unit>();
  for (const i of indices) {
    const name = names[i]!;
    const dot = name.lastIndexOf('.');
    const module = dot < 0 ? '' : name.slice(0, dot);
    const leaf = name.slice(dot + 1);
    const path = level === 'module' ? module : name;
    let u = byPath.get(path);
    if (!u) byPath.set(path, (u = { path, byLeaf: new Map(), signature: '', order: i, words: words(module) }));
    u.byLeaf.set(leaf, i);
  }
  for (const u of byPath.values()) {
    u.signature = [...u.byLeaf]
      .map(([leaf, i]) => `${leaf}:${entries[i]!.shape?.join('x') ?? '?'}`)
      .sort()
      .join('|');
  }
  return [...byPath.values()].sort((x, y) => x.order - y.order);
}

/** The words of a module path, without indices: `layers.0.self_attn` → {layers, self, attn}. */
function words(path: string): Set<string> {
  return new Set(
    path
      .toLowerCase()
      .split(/[._\d]+/)
      .filter((w) => w.length > 0),
  );
}

function similarity(a: Set<string>, b: Set<string>): number {
  if (!a.size || !b.size) return 0;
  let common = 0;
  for (const w of a) if (b.has(w)) common++;
  return common / (a.size + b.size - common);
}

function pairGroups(a: Unit[], b: Unit[], out: StructureMatch, blocked: Set<number>, level: 'module' | 'key', ckKeys: string[], tgtKeys: string[]): void {
  const groups = new Map<string, { a: Unit[]; b: Unit[] }>();
  for (const u of a) {
    const g = groups.get(u.signature) ?? { a: [], b: [] };
    g.a.push(u);
    groups.set(u.signature, g);
  }
  for (const u of b) groups.get(u.signature)?.b.push(u);
  const pair = (x: Unit, y: Unit, confidence: number, basis: NonNullable<FitRule['basis']>): void => {
    for (const [leaf, i] of x.byLeaf) out.pairs.set(i, y.byLeaf.get(leaf)!);
    const from = level === 'module' ? x.path : ckKeys[[...x.byLeaf.values()][0]!]!;
    const to = level === 'module' ? y.path : tgtKeys[[...y.byLeaf.values()][0]!]!;
    const n = x.byLeaf.size;
    out.rules.push({
      kind: 'rename',
      from,
      to,
      keys: n,
      confidence: Math.round(confidence * 100) / 100,
      basis,
      text: `rename ${from || '(root)'} → ${to || '(root)'} (${n} key${n === 1 ? '' : 's'}; ${basis.join(', ')}; confidence ${Math.round(confidence * 100)}%)`,
    });
  };
  const ask = (xs: Unit[], ys: Unit[], why: string): void => {
    for (const x of xs) for (const i of x.byLeaf.values()) blocked.add(i);
    const names = (us: Unit[]): string[] => us.map((u) => (level === 'module' ? u.path || '(root)' : ckKeys.length ? u.path : u.path));
    out.ambiguous.push({
      checkpoint: names(xs),
      model: names(ys),
      text: `${names(xs).join(', ')} could be ${ys.length === 1 ? '' : 'any of '}${names(ys).join(', ')}: ${why}; say which with --rename`,
    });
  };
  for (const { a: xs, b: ys } of groups.values()) {
    if (!ys.length) continue;
    if (xs.length === 1 && ys.length === 1) {
      const sim = similarity(xs[0]!.words, ys[0]!.words);
      pair(xs[0]!, ys[0]!, 0.9 + 0.1 * sim, sim > 0 ? ['shape', 'structure', 'name'] : ['shape', 'structure']);
      continue;
    }
    if (xs.length === ys.length) {
      // in order, unless a name points elsewhere
      const contradicted = xs.some((x, i) => {
        const own = similarity(x.words, ys[i]!.words);
        for (let j = Math.max(0, i - NAME_WINDOW); j < Math.min(ys.length, i + NAME_WINDOW + 1); j++)
          if (j !== i && similarity(x.words, ys[j]!.words) > own) return true;
        return false;
      });
      if (contradicted) {
        ask(xs, ys, `${xs.length} of the same shape on each side, and their names do not follow their order`);
        continue;
      }
      xs.forEach((x, i) => {
        const sim = similarity(x.words, ys[i]!.words);
        pair(x, ys[i]!, 0.7 + 0.2 * sim, sim > 0 ? ['shape', 'structure', 'order', 'name'] : ['shape', 'structure', 'order']);
      });
      continue;
    }
    // other counts: only a name that singles out one candidate, both ways, decides
    const restX: Unit[] = [];
    const takenY = new Set<Unit>();
    for (const x of xs) {
      const best = uniqueBest(x, ys);
      if (best && !takenY.has(best) && uniqueBest(best, xs) === x) {
        takenY.add(best);
        pair(x, best, 0.5 + 0.4 * similarity(x.words, best.words), ['shape', 'structure', 'name']);
      } else restX.push(x);
    }
    const restY = ys.filter((y) => !takenY.has(y));
    if (restX.length && restY.length)
      ask(
        restX,
        restY,
        `${restX.length === 1 ? 'it has' : 'they have'} the same shapes as ${restY.length === 1 ? 'it' : 'each of them'} and nothing tells them apart`,
      );
  }
}

function uniqueBest(x: Unit, ys: Unit[]): Unit | null {
  let best: Unit | null = null;
  let bestSim = 0;
  let tie = false;
  for (const y of ys) {
    const s = similarity(x.words, y.words);
    if (s > bestSim) {
      best = y;
      bestSim = s;
      tie = false;
    } else if (s === bestSim && s > 0) tie = true;
  }
  return tie ? null : best;
}
