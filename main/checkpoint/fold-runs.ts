/**
 * Numbered runs in a key tree folded into one line: 2,000 transformer blocks `layers.0.` …
 * `layers.1999.` with the same inside read as `layers.{0..1999}.`, and `layer0.weight` …
 * `layer9999.weight` as `layer{0..9999}.weight`. Siblings fold when their names differ only in a
 * consecutive number and everything shown under them is the same (`key-trie.ts` decides that by
 * an interned shape number).
 *
 * A name is read where it lies, `s[from, to)` of a state-dict key, so no name is cut out of its
 * key unless it is shown: a tree of 500,000 keys asks this of every node.
 */

/** Runs shorter than this stay as they are. */
export const MIN_RUN = 3;

/**
 * A name `s[from, to)` cut as `^(.*?)(\d+)(\D*)$` (the last run of digits): the stem is
 * `s[from, digits)`, the number `s[digits, tail)`, the tail `s[tail, to)`.
 */
export class NumberedName {
  s = '';
  from = 0;
  to = 0;
  digits = 0;
  tail = 0;
  n = 0;

  /** Reads `s[from, to)`; false when the pattern does not match it (no digits, a leading zero, a line break in the stem). */
  read(s: string, from: number, to: number): boolean {
    let i = to;
    while (i > from && !isDigit(s.charCodeAt(i - 1))) i--;
    const digitsEnd = i;
    while (i > from && isDigit(s.charCodeAt(i - 1))) i--;
    if (i === digitsEnd || (digitsEnd - i > 1 && s.charCodeAt(i) === 0x30)) return false;
    for (let c = from; c < i; c++) if (isLineBreak(s.charCodeAt(c))) return false; // the pattern's `.` stops at line breaks
    this.s = s;
    this.from = from;
    this.to = to;
    this.digits = i;
    this.tail = digitsEnd;
    this.n = digitsEnd - i <= 15 ? decimal(s, i, digitsEnd) : Number(s.slice(i, digitsEnd));
    return true;
  }

  copy(other: NumberedName): void {
    this.s = other.s;
    this.from = other.from;
    this.to = other.to;
    this.digits = other.digits;
    this.tail = other.tail;
    this.n = other.n;
  }

  /** Whether `other` has the same stem and the same tail. */
  sameStemAndTail(other: NumberedName): boolean {
    const stem = this.digits - this.from;
    const tail = this.to - this.tail;
    if (stem !== other.digits - other.from || tail !== other.to - other.tail) return false;
    for (let i = 0; i < stem; i++) if (this.s.charCodeAt(this.from + i) !== other.s.charCodeAt(other.from + i)) return false;
    for (let i = 0; i < tail; i++) if (this.s.charCodeAt(this.tail + i) !== other.s.charCodeAt(other.tail + i)) return false;
    return true;
  }

  /** The name of a run of `run` names from this one: `stem{n..n+run-1}tail`. */
  runName(run: number): string {
    return `${this.s.slice(this.from, this.digits)}{${this.n}..${this.n + run - 1}}${this.s.slice(this.tail, this.to)}`;
  }
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

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
