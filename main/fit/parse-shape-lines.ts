import type { KeyShape } from '../../shared/fit.ts';

/**
 * One `key shape` pair per line, in the forms people paste: `print(k, v.shape)` output
 * (`conv1.weight torch.Size([8, 3, 3, 3])`, `torch.Size([])` for a 0-d tensor), `[8, 3, 3, 3]`,
 * `(8, 3, 3, 3)`, `(8,)`, `8x3x3x3`, or a bare number for a 1-d shape. Separators between key
 * and shape may be spaces, a tab, `:` or `,`. Blank lines and `#` comments are skipped.
 * Returns the pairs, or the first line that is none of these (1-based) as an error.
 */
export function parseShapeLines(text: string): { entries: KeyShape[] } | { badLine: number; line: string } {
  const entries: KeyShape[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^['"]?([^\s'":,]+)['"]?\s*[:,]?\s+(.+?)\s*,?$/.exec(line);
    const shape = m ? parseShape(m[2]!) : null;
    if (!m || !shape) return { badLine: i + 1, line };
    entries.push({ key: m[1]!, shape });
  }
  return { entries };
}

/** `torch.Size([8, 3])`, `[8, 3]`, `(8, 3)`, `(8,)`, `()`, `8x3`, `8`: the dims, or null. */
export function parseShape(text: string): number[] | null {
  let s = text.trim();
  const sized = /^torch\.Size\((.*)\)$/.exec(s);
  if (sized) s = sized[1]!.trim();
  const bracket = /^[[(](.*)[\])]$/.exec(s);
  let parts: string[];
  if (bracket)
    parts = bracket[1]!
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
  else if (/^\d+(\s*[x×]\s*\d+)*$/.test(s)) parts = s.split(/[x×]/).map((x) => x.trim());
  else return null;
  if (!parts.every((p) => /^\d+$/.test(p))) return null;
  return parts.map(Number);
}
