import type { ConversionRules } from '../../shared/presets.ts';
import { commonPrefixes } from '../checkpoint/layout.ts';

/**
 * How the keys of one state dict change. Prefixes are removed and added at the start of keys
 * only; a key is never edited with a search-and-replace inside it (the `k.replace('module.', '')`
 * hand fix that breaks models with a submodule called `module`).
 */
export interface KeyMapper {
  /** wrapper prefixes the preset removes from this state dict, outermost first */
  stripped: string[];
  /** prefixes added after stripping, outermost first (dp/ddp: `module.`; then --add-prefix) */
  added: string[];
  /** the new key, or null when the key is dropped by include/exclude */
  map(key: string): string | null;
  /**
   * True when distinct keys of the keys it was made for always get distinct new keys: it only
   * removes the prefixes all of them share (`stripped`) and adds prefixes (no rename, key map or
   * --strip-prefix, which can make two keys one).
   */
  distinctStayDistinct: boolean;
  /** a `_metadata` module path ('' = root) → its new path, or null when it is dropped */
  mapModulePath(path: string): string | null;
}

export function keyMapper(keys: string[], rules: ConversionRules, lightning: boolean): KeyMapper {
  const preset = rules.preset;
  // The preset strips the wrapper prefixes every key of this state dict shares (so a model whose
  // own submodule is called `module` keeps it), then dp/ddp add exactly one `module.`.
  const stripped = preset ? commonPrefixes(keys, lightning) : [];
  const adds = [...(preset && (preset.name === 'dp' || preset.name === 'ddp') ? ['module.'] : []), ...(rules.addPrefix ? [rules.addPrefix] : [])];
  const renames = rules.renames.map((r) => ({ re: new RegExp(r.pattern), to: r.replacement }));
  const include = rules.include ? new RegExp(rules.include) : null;
  const exclude = rules.exclude ? new RegExp(rules.exclude) : null;

  const canonical = (key: string): string => {
    let k = key;
    for (const p of stripped) if (k.startsWith(p)) k = k.slice(p.length);
    for (const p of rules.stripPrefixes) if (p && k.startsWith(p)) k = k.slice(p.length);
    for (const r of renames) k = k.replace(r.re, r.to);
    return k;
  };
  // the prefixes added, outermost first: one string, not a reversed copy of them per key
  const added = adds.join('');
  const withAdds = (k: string): string => (added ? added + k : k);
  const exact = rules.keyMap ? new Map(rules.keyMap.map((m) => [m.from, m.to])) : null;
  const exactModules = rules.keyMap ? keyMapModulePaths(rules.keyMap) : null;
  return {
    stripped,
    added: adds,
    distinctStayDistinct: !exact && !renames.length && !rules.stripPrefixes.some((p) => p),
    map(key) {
      if (exact?.has(key)) return exact.get(key)!;
      const k = canonical(key);
      if (include && !include.test(k)) return null;
      if (exclude && exclude.test(k)) return null;
      return withAdds(k);
    },
    mapModulePath(path) {
      if (exactModules) return exactModules.get(path) ?? null;
      // A module path is a key without its last part: map `path.` and drop the trailing dot.
      // The wrappers' own entries ('' above `module.`, and `_orig_mod` above
      // `_orig_mod.module.`) vanish with their prefixes.
      const asKey = path === '' ? '' : path + '.';
      const chain = stripped.join('');
      if (chain && asKey.length < chain.length && chain.startsWith(asKey)) return null;
      const full = withAdds(canonical(asKey));
      return full.endsWith('.') ? full.slice(0, -1) : full;
    },
  };
}

/** The module paths a wrapper adds: `module.` added to keys means `_metadata` gains a root entry. */
export function addedModulePaths(rules: ConversionRules): string[] {
  const adds = [
    ...(rules.preset && (rules.preset.name === 'dp' || rules.preset.name === 'ddp') ? ['module.'] : []),
    ...(rules.addPrefix ? [rules.addPrefix] : []),
  ];
  // Each added prefix level is a module of its own: 'module.' → '' (the wrapper itself).
  const out: string[] = [];
  let acc = '';
  for (const p of adds) {
    out.push(acc.endsWith('.') ? acc.slice(0, -1) : acc);
    acc += p;
  }
  return out;
}

/** torch's `map_location` dict: a saved tag → a new tag; `*` matches any tag. */
export function deviceMapper(rules: ConversionRules, rank = 0): (tag: string) => string {
  const table = rules.mapLocation;
  const preset = rules.preset;
  const presetTag = !preset
    ? null
    : preset.name === 'cpu'
      ? 'cpu'
      : preset.name === 'gpu'
        ? `cuda:${preset.index}`
        : preset.name === 'dp'
          ? 'cuda:0'
          : `cuda:${rank}`;
  return (tag) => {
    const hit = table.find((r) => r.from === tag) ?? table.find((r) => r.from === '*');
    if (hit) return hit.to;
    return presetTag ?? tag;
  };
}

/** A key map's module paths: `a.b.weight → c.weight` moves module `a.b` to `c` (conflicting moves are dropped). */
export function keyMapModulePaths(keyMap: { from: string; to: string | null }[]): Map<string, string | null> {
  const out = new Map<string, string | null>();
  const parent = (k: string): string => (k.includes('.') ? k.slice(0, k.lastIndexOf('.')) : '');
  for (const m of keyMap) {
    if (m.to === null) continue;
    const from = parent(m.from);
    const to = parent(m.to);
    const seen = out.get(from);
    out.set(from, seen === undefined || seen === to ? to : null);
  }
  return out;
}
