/** Numbers as the verify reports (text and HTML) print them. */
export const pct = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(2)}%`);

export function num(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? String(Number(x.toPrecision(4))) : x.toExponential(2);
}
