// Long --json output (inspect's tensor list, convert's per-tensor checks) written in pieces.

/** Elements of a long array per piece of text. */
const PIECE = 4096;

/**
 * A long list that `value` holds in another form than an array (a conversion's packed checks):
 * `at` is the object in its place in `value`, `items` gives its elements a piece at a time, in order.
 */
export interface LongList {
  at: object;
  length: number;
  items(from: number, to: number): readonly unknown[];
  /** `JSON.stringify(items(from, to)).slice(1, -1)` made directly, when the list can (inspect's tensor list): used instead of `items` */
  json?(from: number, to: number): string;
  /** `json(from, to)` as UTF-8 bytes, made without the one long string: used instead of `json` where bytes can be written */
  utf8?(from: number, to: number): Uint8Array;
}

/**
 * `JSON.stringify(value) + '\n'`, byte for byte, written in pieces: each array of `long` that
 * `value` holds (the tensor list or the checks of a 500,000-tensor file, 120 MB of text) is
 * written PIECE elements at a time instead of as one string held twice (the string and its
 * bytes). A `LongList` is written as the array of its items. `room` (the CLI's `stdoutRoom`) is
 * awaited after each piece: into a pipe, Node queues what the reader has not taken yet, and
 * without waiting the whole output was held at once. `writeBytes` (the CLI's `stdoutBytes`)
 * takes a list's `utf8` pieces where it has them.
 */
export async function writeJsonInPieces(
  value: unknown,
  long: readonly (readonly unknown[] | LongList)[],
  write: (s: string) => void,
  room?: () => Promise<void>,
  writeBytes?: (b: Uint8Array) => void,
): Promise<void> {
  const lists: LongList[] = long.map((l) => (Array.isArray(l) ? { at: l, length: l.length, items: (from, to) => l.slice(from, to) } : (l as LongList)));
  // each long list stands in as a marker that no other text can hold (a NUL and a random tag)
  const tag = `long-${Math.random().toString(36).slice(2)}-`;
  const index = new Map<unknown, number>(lists.map((l, i) => [l.at, i]));
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'object' && v !== null && index.has(v) ? `\u0000${tag}${index.get(v)}` : v));
  const marker = new RegExp(`"\\\\u0000${tag}(\\d+)"`, 'g');
  let from = 0;
  let close = '';
  for (const m of text.matchAll(marker)) {
    write(`${close}${text.slice(from, m.index)}[`);
    const list = lists[Number(m[1])]!;
    for (let i = 0; i < list.length; i += PIECE) {
      if (list.utf8 && writeBytes) {
        if (i) write(',');
        writeBytes(list.utf8(i, i + PIECE));
      } else write((i ? ',' : '') + (list.json ? list.json(i, i + PIECE) : JSON.stringify(list.items(i, i + PIECE)).slice(1, -1)));
      await room?.();
    }
    close = ']';
    from = m.index + m[0].length;
  }
  write(`${close}${text.slice(from)}\n`);
}
