/**
 * "did you mean …?" for mistyped commands, options and presets: the closest known word by edit
 * distance (a swap of two neighbours counts as one edit), when it is close enough to be a typo.
 * No Node, no DOM: the CLI and the presets parser share it.
 */
export function closest(word: string, known: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(w, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  const limit = Math.max(1, Math.floor(w.length / 3));
  return best !== null && bestDistance > 0 && bestDistance <= limit ? best : null;
}

/** ` (did you mean 'x'?)` or the empty string. */
export function didYouMean(word: string, known: readonly string[], quote = "'"): string {
  const c = closest(word, known);
  return c ? ` (did you mean ${quote}${c}${quote}?)` : '';
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => {
    const r = new Array<number>(b.length + 1).fill(0);
    r[0] = i;
    return r;
  });
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
