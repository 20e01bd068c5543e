/** Small text helpers for the terminal output. */

export { plural } from '../../shared/plural.ts';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** One line of a report: its label in bold in a column of 9, then the text (`written   out.pt  12 KiB`). */
export function reportRow(s: Style, label: string, text: string): string {
  return `${s.bold(label.padEnd(9))} ${text}`;
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
}

export function makeStyle(color: boolean): Style {
  const wrap =
    (code: string) =>
    (s: string): string =>
      color ? `\x1b[${code}m${s}\x1b[0m` : s;
  return { bold: wrap('1'), dim: wrap('2'), red: wrap('31'), yellow: wrap('33'), green: wrap('32') };
}
