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
  const folded = new TrieSummary(width).fold(buildTrie(entries), 0);
  return { shown: folded.shown, total: folded.total };
}

/**
 * A node of the trie: a dotted part of some keys. Its children are a list in the order first
 * seen, found by name through a Map only once there are more than a few (a node per key holds
 * no Map: most have one child, `w0` → `weight`, and 100,000 small Maps were most of the trie's
 * cost). The part is `key[from, from + name.length)` of the key that made the node (every key
 * through the node holds its part at the same place), so a shown name is cut from that key.
 */
class KeyNode {
  tensor: TorchTensor | undefined = undefined;
  /** keys at or under this node */
  count = 0;
  childCount = 0;
  first: KeyNode | null = null;
  last: KeyNode | null = null;
  next: KeyNode | null = null;
  private byName: Map<string, KeyNode> | null = null;

  constructor(
    readonly name: string,
    readonly key: string,
    readonly from: number,
  ) {}

  /** where the part ends in `key` */
  get to(): number {
    return this.from + this.name.length;
  }

  /** The child named `part` (`key[from, ...)`), made when missing. */
  child(part: string, key: string, from: number): KeyNode {
    if (this.byName) {
      const found = this.byName.get(part);
      if (found) return found;
    } else for (let c = this.first; c; c = c.next) if (c.name === part) return c;
    const n = new KeyNode(part, key, from);
    if (this.last) this.last.next = n;
    else this.first = n;
    this.last = n;
    this.childCount++;
    if (this.byName) this.byName.set(part, n);
    else if (this.childCount > SCANNED_CHILDREN) {
      this.byName = new Map();
      for (let c = this.first; c; c = c.next) this.byName.set(c.name, c);
    }
    return n;
  }
}

/** Children found by walking the list; past this many, by a Map. */
const SCANNED_CHILDREN = 8;

function buildTrie(entries: readonly StateDictEntry[]): KeyNode {
  const root = new KeyNode('', '', 0);
  // Consecutive keys share most of their dotted prefix (`layers.7.mlp.` before `layers.7.attn.`):
  // the nodes the previous key passed through, and where each of its parts ended, are kept, and
  // the walk of the next key starts below the deepest part both keys spell out in full.
  const path: KeyNode[] = [];
  const partEnds: number[] = [];
  let parts = 0; // how many of `path` and `partEnds` are the previous key's
  let prev = '';
  for (const { key: k, tensor: t } of entries) {
    const limit = Math.min(k.length, prev.length);
    let same = 0;
    while (same < limit && k.charCodeAt(same) === prev.charCodeAt(same)) same++;
    // a part of the previous key is shared when it and its dot lie inside the common prefix
    let depth = 0;
    while (depth < parts && partEnds[depth]! < same) depth++;
    root.count++;
    for (let i = 0; i < depth; i++) path[i]!.count++;
    let cur = depth ? path[depth - 1]! : root;
    parts = depth;
    for (let from = depth ? partEnds[depth - 1]! + 1 : 0; ; ) {
      const dot = k.indexOf('.', from);
      const next = cur.child(dot < 0 ? k.slice(from) : k.slice(from, dot), k, from);
      next.count++;
      cur = next;
      if (dot < 0) break;
      path[parts] = next;
      partEnds[parts++] = dot;
      from = dot + 1;
    }
    cur.tensor = t;
    prev = k;
  }
  return root;
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

  constructor(private readonly width: number) {}

  /**
   * The children of `parent`, folded: siblings whose names differ only in a consecutive number
   * and whose shapes are equal make one node (`MIN_RUN` or more of them). Read in one pass; a
   * run's first and second members are kept (a run of two is shown as it is).
   */
  fold(parent: KeyNode, depth: number): Folded {
    const out = new Folded();
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
    for (let start = parent.first; start; start = start.next) {
      // a chain of single children is one node (`w0.weight`); a part that is a key and a prefix shows as the prefix
      let end = start;
      while (!end.tensor && end.childCount === 1) end = end.first!;
      const sub = end.tensor && end.childCount === 0 ? null : this.fold(end, depth + 1);
      const shape = sub ? this.shapeOf('prefix', this.tensorCount(end.count), sub.body) : this.leafShape(end.tensor!);
      // the name as shown: a prefix ends with its dot, found in a key that goes on below it
      const isNumbered = sub ? cand.read(end.first!.key, start.from, end.to + 1) : cand.read(end.key, start.from, end.to);
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
  private show(out: Folded, body: BodyStep, start: KeyNode, end: KeyNode, sub: Folded | null, shape: number): BodyStep {
    if (++out.total > this.width) return body;
    let node: TreeNode;
    let key: string;
    if (sub) {
      node = { key: (key = end.first!.key.slice(start.from, end.to + 1)), type: 'prefix', summary: this.tensorCount(end.count), children: sub.shown };
      if (sub.total > this.width) node.more = sub.total - this.width;
    } else node = { key: (key = end.key.slice(start.from, end.to)), type: leafType(end.tensor!), summary: this.leafText(end.tensor!) };
    out.shown.push(node);
    return this.bodies.step(body, shape, key);
  }

  /** A run of `run` children from `first` (whose chain ends at `end`) as one node; `body` with it. */
  private showRun(out: Folded, body: BodyStep, first: NumberedName, run: number, end: KeyNode, sub: Folded | null): BodyStep {
    if (++out.total > this.width) return body;
    const key = first.runName(run);
    let node: TreeNode;
    if (sub) {
      node = { key, type: 'prefix', summary: this.runText(run, this.tensorCount(end.count)), children: sub.shown };
      if (sub.total > this.width) node.more = sub.total - this.width;
    } else node = { key, type: leafType(end.tensor!), summary: this.runText(run, this.leafText(end.tensor!)) };
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
