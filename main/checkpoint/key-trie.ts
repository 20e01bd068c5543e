import type { TreeNode } from '../../shared/inspect.ts';
import { plural } from '../../shared/plural.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import { MIN_RUN, NumberedName } from './fold-runs.ts';
import type { StateDictEntry } from './roles.ts';

/** The first `width` nodes of a key trie's top level, and how many it has. */
export interface KeyTrieSummary {
  shown: TreeNode[];
  total: number;
}

/**
 * Dotted state-dict keys folded into a tree on their dots (`module.` → `conv1.` → `weight`),
 * with single-child chains joined and numbered runs folded (`layers.{0..1999}.`), so 10,000 keys
 * read as a few dozen lines. At most `width` children are shown per node, the top level included.
 *
 * 100,000 keys make about twice as many trie nodes, and almost all of them fold away: the nodes
 * of the summary are made only for what is shown. Siblings are compared by a shape number (equal
 * numbers: the same type, summary, `more` and children shown, by key and shape), so a run of
 * 250 experts is folded without a summary node for each.
 */
export function keyTrie(entries: readonly StateDictEntry[], width: number): KeyTrieSummary {
  const nodes = buildTrie(entries);
  const folded = new TrieSummary(nodes, width).fold(0, 0);
  return { shown: folded.shown, total: folded.total };
}

/**
 * The trie: nodes are numbers into typed-array columns, not objects (100,000 keys make about
 * 200,000 nodes, and as objects they and their names were most of the trie's time, in allocation
 * and in the scavenges that copied them). A node is a dotted part of some keys: the part is
 * `key[from, from + length)` of the key that made it (every key through the node holds its part at
 * the same place), compared where it lies and cut out only when shown. Its children are a list in
 * the order first seen, found by looking along the list, and through a Map only once there are
 * more than a few (most nodes have one child, `w0` → `weight`).
 */
class KeyNodes {
  /** keys at or under the node */
  count: Int32Array;
  childCount: Int32Array;
  /** first and last child, next sibling (-1: none) */
  first: Int32Array;
  last: Int32Array;
  next: Int32Array;
  /** the node's part: `keys[made][from, from + length)` */
  from: Int32Array;
  length: Int32Array;
  made: Int32Array;
  /** the entry whose key ends at the node (-1: none) */
  tensorOf: Int32Array;
  size = 0;
  /** children by name, for the nodes with more than `SCANNED_CHILDREN` */
  private readonly byName = new Map<number, Map<string, number>>();

  constructor(
    readonly entries: readonly StateDictEntry[],
    capacity: number,
  ) {
    this.count = new Int32Array(capacity);
    this.childCount = new Int32Array(capacity);
    this.first = new Int32Array(capacity);
    this.last = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.from = new Int32Array(capacity);
    this.length = new Int32Array(capacity);
    this.made = new Int32Array(capacity);
    this.tensorOf = new Int32Array(capacity);
  }

  bump(n: number): void {
    this.count[n] = this.count[n]! + 1;
  }

  key(n: number): string {
    return this.entries[this.made[n]!]!.key;
  }

  /** where the node's part ends in its key */
  to(n: number): number {
    return this.from[n]! + this.length[n]!;
  }

  tensor(n: number): TorchTensor | undefined {
    const e = this.tensorOf[n]!;
    return e < 0 ? undefined : this.entries[e]!.tensor;
  }

  add(made: number, from: number, length: number): number {
    if (this.size === this.count.length) this.grow();
    const n = this.size++;
    this.count[n] = this.childCount[n] = 0;
    this.first[n] = this.last[n] = this.next[n] = this.tensorOf[n] = -1;
    this.from[n] = from;
    this.length[n] = length;
    this.made[n] = made;
    return n;
  }

  /** The child of `n` whose part is `key[from, to)` of entry `made`'s key, made when missing. */
  child(n: number, made: number, from: number, to: number): number {
    const key = this.entries[made]!.key;
    const length = to - from;
    const map = this.childCount[n]! > SCANNED_CHILDREN ? this.byName.get(n) : undefined;
    if (map) {
      const found = map.get(key.slice(from, to));
      if (found !== undefined) return found;
    } else
      for (let c = this.first[n]!; c >= 0; c = this.next[c]!) {
        if (this.length[c] !== length) continue;
        const other = this.key(c);
        const at = this.from[c]!;
        let i = 0;
        while (i < length && other.charCodeAt(at + i) === key.charCodeAt(from + i)) i++;
        if (i === length) return c;
      }
    const c = this.add(made, from, length);
    if (this.last[n]! >= 0) this.next[this.last[n]!] = c;
    else this.first[n] = c;
    this.last[n] = c;
    const kids = (this.childCount[n] = this.childCount[n]! + 1);
    if (map) map.set(key.slice(from, to), c);
    else if (kids > SCANNED_CHILDREN) {
      const byName = new Map<string, number>();
      for (let k = this.first[n]!; k >= 0; k = this.next[k]!) byName.set(this.key(k).slice(this.from[k], this.to(k)), k);
      this.byName.set(n, byName);
    }
    return c;
  }

  private grow(): void {
    const columns = ['count', 'childCount', 'first', 'last', 'next', 'from', 'length', 'made', 'tensorOf'] as const;
    for (const name of columns) {
      const bigger = new Int32Array(this.count.length * 2 + 16);
      bigger.set(this[name]);
      this[name] = bigger;
    }
  }
}

/** Children found by walking the list; past this many, by a Map. */
const SCANNED_CHILDREN = 8;

/** The root is node 0. */
function buildTrie(entries: readonly StateDictEntry[]): KeyNodes {
  const nodes = new KeyNodes(entries, 3 * entries.length + 16);
  const root = nodes.add(0, 0, 0);
  // Consecutive keys share most of their dotted prefix (`layers.7.mlp.` before `layers.7.attn.`):
  // the nodes the previous key passed through, and where each of its parts ended, are kept, and
  // the walk of the next key starts below the deepest part both keys spell out in full.
  const path: number[] = [];
  const partEnds: number[] = [];
  let parts = 0; // how many of `path` and `partEnds` are the previous key's
  let prev = '';
  for (let e = 0; e < entries.length; e++) {
    const k = entries[e]!.key;
    const same = commonPrefixLength(k, prev);
    // a part of the previous key is shared when it and its dot lie inside the common prefix
    let depth = 0;
    while (depth < parts && partEnds[depth]! < same) depth++;
    nodes.bump(root);
    for (let i = 0; i < depth; i++) nodes.bump(path[i]!);
    let cur = depth ? path[depth - 1]! : root;
    parts = depth;
    for (let from = depth ? partEnds[depth - 1]! + 1 : 0; ; ) {
      const dot = k.indexOf('.', from);
      const next = nodes.child(cur, e, from, dot < 0 ? k.length : dot);
      nodes.bump(next);
      cur = next;
      if (dot < 0) break;
      path[parts] = next;
      partEnds[parts++] = dot;
      from = dot + 1;
    }
    nodes.tensorOf[cur] = e;
    prev = k;
  }
  return nodes;
}

/**
 * How many leading UTF-16 units `a` and `b` share. A function of its own: `buildTrie` runs once,
 * its loop mostly unoptimized, while this small function is optimized after a few calls.
 */
function commonPrefixLength(a: string, b: string): number {
  const limit = Math.min(a.length, b.length);
  let same = 0;
  while (same < limit && a.charCodeAt(same) === b.charCodeAt(same)) same++;
  return same;
}

/** A node's children as shown: the first `width` after folding, how many in all, and what they show (`Bodies`). */
class Folded {
  shown: TreeNode[] = [];
  total = 0;
  /** the `Bodies` number of the shown children (by key and shape) and `more` */
  body = 0;
}

/**
 * One number per distinct list of (shape, key) pairs followed by a count (a node's shown children
 * and its `more`), found without making a text of the list: a trie over the pairs, one Map step
 * per shape and per key.
 */
class Bodies {
  /** the empty list */
  readonly start = new BodyStep();
  private count = 0;
  /** the empty list and nothing more: a leaf's */
  readonly leaf = this.end(this.start, 0);

  /** The list `at` with (shape, key) after it. */
  step(at: BodyStep, shape: number, key: string): BodyStep {
    const byShape = (at.next ??= new Map());
    let byKey = byShape.get(shape);
    if (!byKey) byShape.set(shape, (byKey = new Map()));
    let next = byKey.get(key);
    if (!next) byKey.set(key, (next = new BodyStep()));
    return next;
  }

  /** The number of the list `at` followed by `more`. */
  end(at: BodyStep, more: number): number {
    let id = (at.ends ??= new Map()).get(more);
    if (id === undefined) at.ends.set(more, (id = this.count++));
    return id;
  }
}

class BodyStep {
  next: Map<number, Map<string, BodyStep>> | null = null;
  ends: Map<number, number> | null = null;
}

/** Folds the trie's levels, bottom up, into the nodes shown. */
class TrieSummary {
  private readonly bodies = new Bodies();
  /** shape numbers by type, summary and body */
  private readonly shapes = new Map<string, Map<string, Map<number, number>>>();
  private shapeCount = 0;
  /** `run × summary` texts by summary and run */
  private readonly runTexts = new Map<string, Map<number, string>>();
  /** leaf shapes by summary, for tensors and Parameters */
  private readonly tensorLeaves = new Map<string, number>();
  private readonly parameterLeaves = new Map<string, number>();
  private readonly countTexts = new Map<number, string>();
  /** the first name of the current run, per depth (a fold reads one level at a time) */
  private readonly runFirsts: NumberedName[] = [];
  private readonly candidate = new NumberedName();
  // tensors in a row often show the same (`float32[16] cpu`): the text is made once per run
  private shownTensor: TorchTensor | undefined = undefined;
  private shownText = '';

  constructor(
    private readonly nodes: KeyNodes,
    private readonly width: number,
  ) {}

  /**
   * The children of `parent`, folded: siblings whose names differ only in a consecutive number
   * and whose shapes are equal make one node (`MIN_RUN` or more of them). Read in one pass; a
   * run's first and second members are kept (a run of two is shown as it is).
   */
  fold(parent: number, depth: number): Folded {
    const out = new Folded();
    const nodes = this.nodes;
    let body = this.bodies.start;
    const first = (this.runFirsts[depth] ??= new NumberedName());
    const cand = this.candidate;
    let run = 0;
    let numbered = false;
    let runStart = parent;
    let runEnd = parent;
    let runSub: Folded | null = null;
    let runShape = 0;
    let secondStart = parent;
    let secondEnd = parent;
    let secondSub: Folded | null = null;
    let secondShape = 0;
    for (let start = nodes.first[parent]!; start >= 0; start = nodes.next[start]!) {
      // a chain of single children is one node (`w0.weight`); a part that is a key and a prefix shows as the prefix
      let end = start;
      while (nodes.tensorOf[end]! < 0 && nodes.childCount[end] === 1) end = nodes.first[end]!;
      const tensor = nodes.tensor(end);
      const sub = tensor && nodes.childCount[end] === 0 ? null : this.fold(end, depth + 1);
      const shape = sub ? this.shapeOf('prefix', this.tensorCount(nodes.count[end]!), sub.body) : this.leafShape(tensor!);
      // the name as shown: a prefix ends with its dot, found in a key that goes on below it
      const isNumbered = sub
        ? cand.read(nodes.key(nodes.first[end]!), nodes.from[start]!, nodes.to(end) + 1)
        : cand.read(nodes.key(end), nodes.from[start]!, nodes.to(end));
      if (run > 0 && numbered && isNumbered && shape === runShape && cand.n === first.n + run && cand.sameStemAndTail(first)) {
        if (run === 1) {
          secondStart = start;
          secondEnd = end;
          secondSub = sub;
          secondShape = shape;
        }
        run++;
        continue;
      }
      if (run >= MIN_RUN) body = this.showRun(out, body, first, run, runEnd, runSub);
      else if (run > 0) {
        body = this.show(out, body, runStart, runEnd, runSub, runShape);
        if (run === 2) body = this.show(out, body, secondStart, secondEnd, secondSub, secondShape);
      }
      run = 1;
      numbered = isNumbered;
      if (numbered) first.copy(cand);
      runStart = start;
      runEnd = end;
      runSub = sub;
      runShape = shape;
    }
    if (run >= MIN_RUN) body = this.showRun(out, body, first, run, runEnd, runSub);
    else if (run > 0) {
      body = this.show(out, body, runStart, runEnd, runSub, runShape);
      if (run === 2) body = this.show(out, body, secondStart, secondEnd, secondSub, secondShape);
    }
    out.body = this.bodies.end(body, Math.max(0, out.total - this.width));
    return out;
  }

  /** One child as it is (the chain `start` … `end`), among the shown while there is room; `body` with it. */
  private show(out: Folded, body: BodyStep, start: number, end: number, sub: Folded | null, shape: number): BodyStep {
    if (++out.total > this.width) return body;
    const nodes = this.nodes;
    let node: TreeNode;
    let key: string;
    if (sub) {
      key = nodes.key(nodes.first[end]!).slice(nodes.from[start], nodes.to(end) + 1);
      node = { key, type: 'prefix', summary: this.tensorCount(nodes.count[end]!), children: sub.shown };
      if (sub.total > this.width) node.more = sub.total - this.width;
    } else {
      const tensor = nodes.tensor(end)!;
      node = { key: (key = nodes.key(end).slice(nodes.from[start], nodes.to(end))), type: leafType(tensor), summary: this.leafText(tensor) };
    }
    out.shown.push(node);
    return this.bodies.step(body, shape, key);
  }

  /** A run of `run` children from `first` (whose chain ends at `end`) as one node; `body` with it. */
  private showRun(out: Folded, body: BodyStep, first: NumberedName, run: number, end: number, sub: Folded | null): BodyStep {
    if (++out.total > this.width) return body;
    const key = first.runName(run);
    let node: TreeNode;
    if (sub) {
      node = { key, type: 'prefix', summary: this.runText(run, this.tensorCount(this.nodes.count[end]!)), children: sub.shown };
      if (sub.total > this.width) node.more = sub.total - this.width;
    } else {
      const tensor = this.nodes.tensor(end)!;
      node = { key, type: leafType(tensor), summary: this.runText(run, this.leafText(tensor)) };
    }
    out.shown.push(node);
    return this.bodies.step(body, this.shapeOf(node.type, node.summary, sub ? sub.body : this.bodies.leaf), key);
  }

  /** One number per distinct (type, summary, children shown by key and shape, more): equal numbers show the same. */
  private shapeOf(type: string, summary: string, body: number): number {
    let bySummary = this.shapes.get(type);
    if (!bySummary) this.shapes.set(type, (bySummary = new Map()));
    let byBody = bySummary.get(summary);
    if (!byBody) bySummary.set(summary, (byBody = new Map()));
    let shape = byBody.get(body);
    if (shape === undefined) byBody.set(body, (shape = this.shapeCount++));
    return shape;
  }

  private runText(run: number, summary: string): string {
    let byRun = this.runTexts.get(summary);
    if (!byRun) this.runTexts.set(summary, (byRun = new Map()));
    let text = byRun.get(run);
    if (text === undefined) byRun.set(run, (text = `${run} × ${summary}`));
    return text;
  }

  private leafShape(t: TorchTensor): number {
    const summary = this.leafText(t);
    const byText = t.isParameter ? this.parameterLeaves : this.tensorLeaves;
    let shape = byText.get(summary);
    if (shape === undefined) byText.set(summary, (shape = this.shapeOf(leafType(t), summary, this.bodies.leaf)));
    return shape;
  }

  private leafText(t: TorchTensor): string {
    const shown = this.shownTensor;
    // shapes are interned (`internDims`) and dtypes shared: the same objects are the same text at once
    if (
      !shown ||
      (shown.dtype !== t.dtype && shown.dtype.name !== t.dtype.name) ||
      shown.device !== t.device ||
      (shown.shape !== t.shape && !sameNumbers(shown.shape, t.shape))
    ) {
      this.shownTensor = t;
      this.shownText = `${t.dtype.name}[${t.shape.join(', ')}] ${t.device}`;
    }
    return this.shownText;
  }

  private tensorCount(n: number): string {
    let text = this.countTexts.get(n);
    if (text === undefined) this.countTexts.set(n, (text = plural(n, 'tensor')));
    return text;
  }
}

function leafType(t: TorchTensor): string {
  return t.isParameter ? 'Parameter' : 'tensor';
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
