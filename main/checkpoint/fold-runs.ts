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

function numbered(key: string | number): Numbered | null {
  const m = /^(.*?)(\d+)(\D*)$/.exec(String(key));
  if (!m || (m[2]!.length > 1 && m[2]!.startsWith('0'))) return null;
  return { stem: m[1]!, n: Number(m[2]), tail: m[3]! };
}

/** What a node shows, apart from its own name. */
function shape(n: TreeNode): string {
  return `${n.type}|${n.summary}|${n.more ?? 0}|${(n.children ?? []).map((c) => `${String(c.key)}=${shape(c)}`).join(',')}`;
}

export function foldNumberedRuns(nodes: readonly TreeNode[]): TreeNode[] {
  const out: TreeNode[] = [];
  for (let i = 0; i < nodes.length; ) {
    const first = numbered(nodes[i]!.key);
    let j = i + 1;
    if (first) {
      const s = shape(nodes[i]!);
      for (; j < nodes.length; j++) {
        const k = numbered(nodes[j]!.key);
        if (!k || k.stem !== first.stem || k.tail !== first.tail || k.n !== first.n + (j - i) || shape(nodes[j]!) !== s) break;
      }
    }
    const run = j - i;
    if (first && run >= MIN_RUN) {
      const node = nodes[i]!;
      out.push({ ...node, key: `${first.stem}{${first.n}..${first.n + run - 1}}${first.tail}`, summary: `${run} × ${node.summary}` });
    } else out.push(...nodes.slice(i, j));
    i = j;
  }
  return out;
}
