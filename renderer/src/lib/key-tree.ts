// The key tree of a checkpoint, built from the report's tensor list: every path element is a
// level, and dotted state-dict keys fold on their dots (`module.conv1.weight` → conv1 › weight).
// Wrapper prefixes (`module.`, `_orig_mod.`) become chip nodes of their own. The tree is flattened
// into rows for the virtual list each time a node is expanded or collapsed: O(visible nodes).
import type { ScalarValue, TensorInfo } from '../../../shared/inspect.ts';
import { WRAPPER_PREFIXES } from '../../../shared/presets.ts';
import { pathText } from './format.ts';

export interface KeyNode {
  id: number;
  label: string;
  /** a wrapper prefix such as `module.` */
  chip: boolean;
  depth: number;
  children: KeyNode[];
  /** index into the report's tensors, for leaves */
  tensor: number | null;
  /** tensors under this node (1 for a leaf) */
  count: number;
  bytes: number;
}

export interface KeyIndex {
  root: KeyNode;
  /** every node, by id */
  nodes: KeyNode[];
  /** per tensor: its one-line path text and where wrapper prefixes sit in it */
  texts: string[];
  chips: [number, number][][];
}

/**
 * `pathOf` picks what names a tensor: its container path (the default), or for whole pickled
 * modules the state-dict key (`conv1.weight` rather than `_modules/conv1/_parameters/weight`).
 */
export function buildKeyIndex(
  tensors: readonly TensorInfo[],
  layoutPrefixes: readonly string[] = [],
  pathOf: (t: TensorInfo) => readonly (string | number)[] = (t) => t.path,
): KeyIndex {
  const wrappers = [...new Set([...WRAPPER_PREFIXES, ...layoutPrefixes])].filter((p) => p.endsWith('.'));
  const nodes: KeyNode[] = [];
  const make = (label: string, chip: boolean, depth: number, tensor: number | null): KeyNode => {
    const n: KeyNode = { id: nodes.length, label, chip, depth, children: [], tensor, count: 0, bytes: 0 };
    nodes.push(n);
    return n;
  };
  const root = make('', false, -1, null);
  const childMaps = new Map<KeyNode, Map<string, KeyNode>>();
  const texts: string[] = [];
  const chips: [number, number][][] = [];

  tensors.forEach((t, ti) => {
    const segs: { label: string; chip: boolean }[] = [];
    const ranges: [number, number][] = [];
    let offset = 0;
    const path = pathOf(t);
    path.forEach((el, k) => {
      if (k > 0) offset += 1; // the '/' separator of pathText
      if (typeof el === 'number') {
        segs.push({ label: `[${el}]`, chip: false });
        offset += String(`[${el}]`).length;
        return;
      }
      let rest = el;
      let at = offset;
      for (;;) {
        const p = wrappers.find((w) => rest.startsWith(w) && rest.length > w.length);
        if (!p) break;
        segs.push({ label: p, chip: true });
        ranges.push([at, at + p.length]);
        at += p.length;
        rest = rest.slice(p.length);
      }
      const parts = rest.split('.');
      if (parts.some((x) => x === '')) segs.push({ label: rest, chip: false });
      else for (const part of parts) segs.push({ label: part, chip: false });
      offset += el.length;
    });
    if (!segs.length) segs.push({ label: '(root)', chip: false });
    texts.push(pathText(path));
    chips.push(ranges);

    let cur = root;
    segs.forEach((s, i) => {
      const leaf = i === segs.length - 1;
      let kids = childMaps.get(cur);
      if (!kids) childMaps.set(cur, (kids = new Map()));
      const key = `${leaf ? 'L' : s.chip ? 'C' : 'G'}${s.label}`;
      let next = leaf ? undefined : kids.get(key);
      if (!next) {
        next = make(s.label, s.chip, cur.depth + 1, leaf ? ti : null);
        cur.children.push(next);
        if (!leaf) kids.set(key, next);
      }
      next.count++;
      next.bytes += t.nbytes;
      cur = next;
    });
    root.count++;
    root.bytes += t.nbytes;
  });

  return { root, nodes, texts, chips };
}

/** The visible rows of the tree: depth-first, descending only into expanded groups. */
export function flattenTree(root: KeyNode, expanded: ReadonlySet<number>): KeyNode[] {
  const out: KeyNode[] = [];
  const stack: KeyNode[] = [...root.children].reverse();
  while (stack.length) {
    const n = stack.pop()!;
    out.push(n);
    if (n.children.length && expanded.has(n.id)) for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
  }
  return out;
}

/** Groups to open at first: everything for small checkpoints, the top levels for big ones. */
export function initialExpansion(index: KeyIndex): Set<number> {
  const groups = index.nodes.filter((n) => n.children.length && n !== index.root);
  if (index.root.count <= 2000) return new Set(groups.map((n) => n.id));
  return new Set(groups.filter((n) => n.depth < 1 || (n.chip && n.depth < 3)).map((n) => n.id));
}

export interface KeyFilter {
  /** tensor indexes that match, in file order */
  matches: number[];
  /** per matching tensor, the matched range in its text */
  ranges: Map<number, [number, number]>;
  error: string | null;
}

/** Case-insensitive substring, or a regular expression when `regex` is set. */
export function filterKeys(index: KeyIndex, query: string, regex: boolean): KeyFilter {
  return filterTexts(index.texts, query, regex);
}

/** The non-tensor values (epoch, best_acc, lr) as the filter sees them: `path = value`. */
export function valueTexts(values: readonly ScalarValue[]): string[] {
  return values.map((v) => `${pathText(v.path)} = ${v.text}`);
}

/** The texts that match, by index, with the matched range of each. */
export function filterTexts(texts: readonly string[], query: string, regex: boolean): KeyFilter {
  const matches: number[] = [];
  const ranges = new Map<number, [number, number]>();
  if (!query) return { matches, ranges, error: null };
  let test: (s: string) => [number, number] | null;
  if (regex) {
    let re: RegExp;
    try {
      re = new RegExp(query, 'i');
    } catch (e) {
      return { matches, ranges, error: (e as Error).message };
    }
    test = (s) => {
      const m = re.exec(s);
      return m ? [m.index, m.index + m[0].length] : null;
    };
  } else {
    const q = query.toLowerCase();
    test = (s) => {
      const i = s.toLowerCase().indexOf(q);
      return i < 0 ? null : [i, i + q.length];
    };
  }
  texts.forEach((s, i) => {
    const r = test(s);
    if (r) {
      matches.push(i);
      ranges.set(i, r);
    }
  });
  return { matches, ranges, error: null };
}

export interface TextPiece {
  text: string;
  chip: boolean;
  hit: boolean;
}

/** Splits a key's text at chip and highlight boundaries, for rendering. */
export function textPieces(text: string, chips: readonly [number, number][], hit: [number, number] | null | undefined): TextPiece[] {
  const cuts = new Set<number>([0, text.length]);
  for (const [a, b] of chips) cuts.add(a).add(b);
  if (hit && hit[1] > hit[0]) cuts.add(hit[0]).add(hit[1]);
  const points = [...cuts].filter((x) => x >= 0 && x <= text.length).sort((a, b) => a - b);
  const out: TextPiece[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i]!;
    const b = points[i + 1]!;
    if (b <= a) continue;
    out.push({
      text: text.slice(a, b),
      chip: chips.some(([x, y]) => a >= x && b <= y),
      hit: !!hit && a >= hit[0] && b <= hit[1],
    });
  }
  return out;
}
