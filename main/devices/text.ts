/** Text clean-up shared by the nvidia-smi parsers. */

// ESC [ ... letter: the underline nvidia-smi puts around the topo header when writing to a terminal.
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Drops a BOM and ANSI escapes, turns CRLF / CR into LF. */
export function cleanText(text: string): string {
  return text
    .replace(/^\uFEFF/, '')
    .replace(ANSI, '')
    .replace(/\r\n?/g, '\n');
}

/** The lines of `text` after cleanText, without trailing whitespace. */
export function cleanLines(text: string): string[] {
  return cleanText(text)
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''));
}

/**
 * nvidia-smi's placeholders for a value it has not got: N/A, [N/A], [Not Supported],
 * [Unknown Error], [Insufficient Permissions], [Function Not Found], [Requested functionality ...].
 */
export function isMissing(value: string): boolean {
  const v = value.trim();
  return v === '' || v === 'N/A' || v === 'Not Supported' || /^\[.*\]$/.test(v);
}

/** A cell as text, or null for a placeholder. */
export function textOrNull(value: string | undefined): string | null {
  if (value === undefined || isMissing(value)) return null;
  return value.trim();
}

/** A number with an optional unit ('81559 MiB', '433.78 W', '9 %', '54', '38C'), or null. */
export function numberOrNull(value: string | undefined): number | null {
  if (value === undefined || isMissing(value)) return null;
  const m = /^([-+]?\d+(?:\.\d+)?)\s*(?:[A-Za-z%]+)?$/.exec(value.trim());
  return m ? Number(m[1]) : null;
}

/** First line of a text, trimmed and shortened for a one-line message. */
export function firstLine(text: string, max = 120): string {
  const line =
    cleanLines(text)
      .find((l) => l.trim() !== '')
      ?.trim() ?? '';
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}
