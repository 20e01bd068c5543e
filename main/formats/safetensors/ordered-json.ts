/**
 * An order-keeping, strict JSON parser for safetensors headers and shard indexes. It parses the
 * UTF-8 bytes themselves: a 500,000-tensor header is 48 MB, and decoding it to one string first
 * held a second 48 MB copy for the whole parse.
 */

/**
 * A JSON object with its keys in file order. `JSON.parse` moves integer-like keys ("0", "12")
 * to the front, which would reorder tensors named that way; it also hides duplicate keys.
 */
export class JsonObject {
  /** built once an object has more than a few keys: a safetensors header holds one small object per tensor */
  private index: Map<string, number> | null = null;
  constructor(readonly entries: [string, JsonValue][] = []) {
    if (entries.length > SMALL_OBJECT) this.index = new Map(entries.map(([k], i) => [k, i]));
  }
  private find(key: string): number | undefined {
    if (this.index) return this.index.get(key);
    for (let i = 0; i < this.entries.length; i++) if (this.entries[i]![0] === key) return i;
    return undefined;
  }
  get(key: string): JsonValue | undefined {
    const i = this.find(key);
    return i === undefined ? undefined : this.entries[i]![1];
  }
  has(key: string): boolean {
    return this.find(key) !== undefined;
  }
  add(key: string, value: JsonValue): boolean {
    if (this.find(key) !== undefined) return false;
    if (!this.index && this.entries.length >= SMALL_OBJECT) this.index = new Map(this.entries.map(([k], i) => [k, i]));
    this.index?.set(key, this.entries.length);
    this.entries.push([key, value]);
    return true;
  }
}

/** Objects with at most this many keys are searched in order, without a Map. */
const SMALL_OBJECT = 8;

/** A number written with a fraction or exponent (JSON integers stay plain numbers). */
export class JsonFloat {
  constructor(readonly value: number) {}
}

export type JsonValue = null | boolean | number | string | JsonFloat | JsonValue[] | JsonObject;

/** Plain JS data for a parsed value (objects lose nothing but key order). */
export function jsonToPlain(v: JsonValue): unknown {
  if (v instanceof JsonFloat) return v.value;
  if (Array.isArray(v)) return v.map(jsonToPlain);
  if (v instanceof JsonObject) return Object.fromEntries(v.entries.map(([k, x]) => [k, jsonToPlain(x)]));
  return v;
}

const MAX_JSON_DEPTH = 64;

/** ASCII strings up to this long are looked up among those already made (`shortString`). */
const SHORT_STRING = 16;
const MAX_SHORT_STRINGS = 4096;
const shortStrings = new Map<number, string>();

/**
 * The string of ASCII bytes [start, end), the same string each time it recurs: a 500,000-tensor
 * header spells "dtype", "shape", "data_offsets" and its dtype tags 2,000,000 times, each a new
 * string before. At most MAX_SHORT_STRINGS are kept; one whose hash is taken by another is made anew.
 */
function shortString(b: Buffer, start: number, end: number): string {
  let h = 0x811c9dc5 | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h = Math.imul(h ^ (end - start), 0x01000193);
  const known = shortStrings.get(h);
  if (known !== undefined && known.length === end - start) {
    let same = true;
    for (let i = 0; i < known.length && same; i++) same = known.charCodeAt(i) === b[start + i];
    if (same) return known;
  }
  const made = b.toString('latin1', start, end);
  if (known === undefined && shortStrings.size < MAX_SHORT_STRINGS) shortStrings.set(h, made);
  return made;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ESCAPED: Record<number, string> = { 0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' };
const NUM = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/;

/**
 * Strict RFC 8259 JSON; throws an Error with a short message naming the byte offset.
 * `json` is the text, or its bytes, which must be valid UTF-8 (the caller checks: `buffer.isUtf8`).
 * `eachTopEntry`, when the value is an object, receives its entries in order as they are parsed and
 * the returned object is then empty: a 500,000-tensor header need not hold an object per tensor.
 * It returns false for a key it has had already (a duplicate key is a JSON error).
 */
export function parseOrderedJson(json: string | Uint8Array, eachTopEntry?: (key: string, value: JsonValue) => boolean): JsonValue {
  const b = typeof json === 'string' ? Buffer.from(json, 'utf8') : Buffer.from(json.buffer, json.byteOffset, json.byteLength);
  const end = b.length;
  let p = 0;
  const bad = (what: string): never => {
    throw new Error(`bad JSON at byte ${p}: ${what}`);
  };
  const ws = (): void => {
    for (;;) {
      const c = b[p];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else return;
    }
  };
  const word = (w: string): boolean => {
    for (let i = 0; i < w.length; i++) if (b[p + i] !== w.charCodeAt(i)) return false;
    p += w.length;
    return true;
  };
  const str = (): string => {
    p++; // opening quote
    let out = '';
    let start = p;
    let ascii = true;
    for (;;) {
      if (p >= end) bad('unterminated string');
      const c = b[p]!;
      if (c === QUOTE) {
        // a copy of the bytes: each name is its own small string, not a slice of a big one; the
        // short ones a header repeats per tensor ("dtype", "shape", "F32") are made once
        out = out === '' && ascii && p - start <= SHORT_STRING ? shortString(b, start, p) : out + b.toString(ascii ? 'latin1' : 'utf8', start, p);
        p++;
        return out;
      }
      if (c < 0x20) bad('control character in string');
      if (c !== BACKSLASH) {
        if (c >= 0x80) ascii = false;
        p++;
        continue;
      }
      out += b.toString(ascii ? 'latin1' : 'utf8', start, p);
      const e = b[p + 1];
      p += 2;
      if (e === 0x75) {
        const hex = b.toString('latin1', p, p + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) bad('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        p += 4;
      } else {
        const s = e === undefined ? undefined : ESCAPED[e];
        if (s === undefined) {
          p -= 2;
          bad('bad escape in string');
        }
        out += s;
      }
      start = p;
      ascii = true;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_JSON_DEPTH) bad(`nested deeper than ${MAX_JSON_DEPTH}`);
    ws();
    const c = b[p];
    if (c === 0x7b) {
      p++;
      const obj = new JsonObject();
      // with `eachTopEntry`, the top object's entries go to it as they are parsed and are not kept
      const streamed = depth === 0 && eachTopEntry !== undefined;
      ws();
      if (b[p] === 0x7d) {
        p++;
        return obj;
      }
      for (;;) {
        ws();
        if (b[p] !== QUOTE) bad('expected a string key');
        const key = str();
        ws();
        if (b[p] !== 0x3a) bad("expected ':'");
        p++;
        const v = value(depth + 1);
        if (streamed ? !eachTopEntry!(key, v) : !obj.add(key, v)) bad(`duplicate key ${JSON.stringify(key.length > 60 ? key.slice(0, 57) + '...' : key)}`);
        ws();
        if (b[p] === 0x2c) {
          p++;
          continue;
        }
        if (b[p] === 0x7d) {
          p++;
          return obj;
        }
        bad("expected ',' or '}'");
      }
    }
    if (c === 0x5b) {
      p++;
      const arr: JsonValue[] = [];
      ws();
      if (b[p] === 0x5d) {
        p++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (b[p] === 0x2c) {
          p++;
          continue;
        }
        if (b[p] === 0x5d) {
          p++;
          // an exact copy: a pushed-to array keeps room for 16 more items, and a header holds two
          // short arrays per tensor (shape, data_offsets), the shape kept by the tensor
          return arr.length < 16 ? arr.slice() : arr;
        }
        bad("expected ',' or ']'");
      }
    }
    if (c === QUOTE) return str();
    if (c === 0x74 && word('true')) return true;
    if (c === 0x66 && word('false')) return false;
    if (c === 0x6e && word('null')) return null;
    // a plain integer (every shape and offset) is read without the regular expression
    let q = c === 0x2d ? p + 1 : p;
    const digits = q;
    let n = 0;
    for (let d = b[q]; d !== undefined && d >= 0x30 && d <= 0x39 && q - digits < 15; d = b[++q]) n = n * 10 + (d - 0x30);
    const after = b[q];
    const plain =
      q > digits &&
      !(q - digits > 1 && b[digits] === 0x30) &&
      !(after !== undefined && after >= 0x30 && after <= 0x39) &&
      after !== 0x2e &&
      after !== 0x65 &&
      after !== 0x45;
    if (plain) {
      p = q;
      return c === 0x2d ? -n : n;
    }
    // the rest by the grammar's pattern, over the run of characters a number can hold
    let r = p;
    for (let d = b[r]; d !== undefined && ((d >= 0x30 && d <= 0x39) || d === 0x2d || d === 0x2b || d === 0x2e || d === 0x65 || d === 0x45); d = b[++r]);
    const m = NUM.exec(b.toString('latin1', p, r));
    if (m) {
      p += m[0].length;
      const v = Number(m[0]);
      return m[1] || m[2] ? new JsonFloat(v) : v;
    }
    return p >= end ? bad('unexpected end') : bad(`unexpected character ${JSON.stringify(String.fromCharCode(b[p]!))}`);
  };
  const v = value(0);
  ws();
  if (p !== end) bad('trailing characters after the JSON value');
  return v;
}
