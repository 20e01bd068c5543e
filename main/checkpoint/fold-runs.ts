/**
 * Numbered runs in a key tree folded into one line: 2,000 transformer blocks `layers.0.` …
 * `layers.1999.` with the same inside read as `layers.{0..1999}.`, and `layer0.weight` …
 * `layer9999.weight` as `layer{0..9999}.weight`. Siblings fold when their names differ only in a
 * consecutive number and everything shown under them is the same.
 */
import type { TreeNode } from '../../shared/inspect.ts';

/** Runs shorter than this stay as they are. */
const MIN_RUN = 3;

/** A key cut as `^(.*?)(\d+)(\D*)$`: the stem is `key[0, digits)`, the number `key[digits, tail)`, the tail the rest. */
interface Numbered {
  key: string;
  digits: number;
  tail: number;
  n: number;
}

/**
 * `^(.*?)(\d+)(\D*)$` (the last run of digits), read from the end without a regular expression
 * and without cutting the key: a tree of 500,000 keys asks this of every node, and the stem and
 * tail are compared in place (`sameStemAndTail`), cut only for a run that folds.
 */
function numbered(key: string | number): Numbered | null {
  const s = String(key);
  let i = s.length;
  while (i > 0 && !isDigit(s.charCodeAt(i - 1))) i--;
  const digitsEnd = i;
  while (i > 0 && isDigit(s.charCodeAt(i - 1))) i--;
  if (i === digitsEnd || (digitsEnd - i > 1 && s.charCodeAt(i) === 0x30)) return null;
  for (let c = 0; c < i; c++) if (isLineBreak(s.charCodeAt(c))) return null; // the pattern's `.` stops at line breaks
  return { key: s, digits: i, tail: digitsEnd, n: digitsEnd - i <= 15 ? decimal(s, i, digitsEnd) : Number(s.slice(i, digitsEnd)) };
}

/** The value of the digits `s[from, to)`, exact below 10^15 (as `Number` reads them). */
function decimal(s: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) v = v * 10 + (s.charCodeAt(i) - 0x30);
  return v;
}

function isLineBreak(c: number): boolean {
  return c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029;
}

/** Whether `a` and `b` have the same stem and the same tail. */
function sameStemAndTail(a: Numbered, b: Numbered): boolean {
  const aTail = a.key.length - a.tail;
  if (a.digits !== b.digits || aTail !== b.key.length - b.tail) return false;
  for (let i = 0; i < a.digits; i++) if (a.key.charCodeAt(i) !== b.key.charCodeAt(i)) return false;
  for (let i = 0; i < aTail; i++) if (a.key.charCodeAt(a.tail + i) !== b.key.charCodeAt(b.tail + i)) return false;
  return true;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Whether two nodes show the same, apart from their own names: type, summary, more, and each child by name and what it shows. */
function sameShape(a: TreeNode, b: TreeNode): boolean {
  if (a === b) return true;
  if (a.type !== b.type || a.summary !== b.summary || (a.more ?? 0) !== (b.more ?? 0)) return false;
  const ak = a.children ?? [];
  const bk = b.children ?? [];
  if (ak.length !== bk.length) return false;
  for (let i = 0; i < ak.length; i++) if (String(ak[i]!.key) !== String(bk[i]!.key) || !sameShape(ak[i]!, bk[i]!)) return false;
  return true;
}

export function foldNumberedRuns(nodes: readonly TreeNode[]): TreeNode[] {
  const out: TreeNode[] = [];
  /** `numbered` of the node that ended the last run, which starts the next */
  let carried: Numbered | null | undefined;
  for (let i = 0; i < nodes.length; ) {
    const first = carried !== undefined ? carried : numbered(nodes[i]!.key);
    carried = undefined;
    let j = i + 1;
    if (first) {
      for (; j < nodes.length; j++) {
        const k = numbered(nodes[j]!.key);
        if (!k || !sameStemAndTail(k, first) || k.n !== first.n + (j - i) || !sameShape(nodes[j]!, nodes[i]!)) {
          carried = k;
          break;
        }
      }
    }
    const run = j - i;
    if (first && run >= MIN_RUN) {
      const node = nodes[i]!;
      const stem = first.key.slice(0, first.digits);
      const tail = first.key.slice(first.tail);
      out.push({ ...node, key: `${stem}{${first.n}..${first.n + run - 1}}${tail}`, summary: `${run} × ${node.summary}` });
    } else for (let k = i; k < j; k++) out.push(nodes[k]!);
    i = j;
  }
  return out;
}
