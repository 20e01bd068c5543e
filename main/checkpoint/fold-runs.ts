/**
 * Numbered runs in a key tree folded into one line: 2,000 transformer blocks `layers.0.` …
 * `layers.1999.` with the same inside read as `layers.{0..1999}.`, and `layer0.weight` …
 * `layer9999.weight` as `layer{0..9999}.weight`. Siblings fold when their names differ only in a
 * consecutive number and everything shown under them is the same.
 */
import type { TreeNode } from '../../shared/inspect.ts';

/** Runs shorter than this stay as they are. */
const MIN_RUN = 3;

interface Numbered {
  stem: string;
  n: number;
  tail: string;
}

/** `^(.*?)(\d+)(\D*)$` (the last run of digits), read from the end without a regular expression: a tree of 500,000 keys asks this of every node. */
function numbered(key: string | number): Numbered | null {
  const s = String(key);
  let i = s.length;
  while (i > 0 && !isDigit(s.charCodeAt(i - 1))) i--;
  const digitsEnd = i;
  while (i > 0 && isDigit(s.charCodeAt(i - 1))) i--;
  if (i === digitsEnd || (digitsEnd - i > 1 && s.charCodeAt(i) === 0x30)) return null;
  const stem = s.slice(0, i);
  if (LINE_BREAK.test(stem)) return null; // the pattern's `.` stops at line breaks
  return { stem, n: Number(s.slice(i, digitsEnd)), tail: s.slice(digitsEnd) };
}

const LINE_BREAK = /[\n\r\u2028\u2029]/;

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
  for (let i = 0; i < nodes.length; ) {
    const first = numbered(nodes[i]!.key);
    let j = i + 1;
    if (first) {
      for (; j < nodes.length; j++) {
        const k = numbered(nodes[j]!.key);
        if (!k || k.stem !== first.stem || k.tail !== first.tail || k.n !== first.n + (j - i) || !sameShape(nodes[j]!, nodes[i]!)) break;
      }
    }
    const run = j - i;
    if (first && run >= MIN_RUN) {
      const node = nodes[i]!;
      out.push({ ...node, key: `${first.stem}{${first.n}..${first.n + run - 1}}${first.tail}`, summary: `${run} × ${node.summary}` });
    } else for (let k = i; k < j; k++) out.push(nodes[k]!);
    i = j;
  }
  return out;
}
