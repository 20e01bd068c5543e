const strict = new TextDecoder('utf-8', { fatal: true });
const lenient = new TextDecoder('utf-8');

/**
 * UTF-8 as CPython's unpickler decodes BINUNICODE: `str(data, 'utf-8', 'surrogatepass')`
 * (Lib/pickle.py `load_binunicode`; torch/_weights_only_unpickler.py does the same). A lone
 * surrogate in a str (`'\ud800'`, legal Python) is written as its 3-byte form ED A0..BF xx, which
 * strict UTF-8 refuses; a plain decoder made U+FFFD of each byte, so the value changed on the way
 * through a conversion. Other invalid bytes (no pickler writes them) throw a TypeError when
 * `fatal`, else become U+FFFD.
 */
export function utf8SurrogatePass(b: Uint8Array, fatal: boolean): string {
  try {
    return strict.decode(b);
  } catch (e) {
    let out = '';
    let from = 0;
    for (let i = 0; i + 2 < b.length; i++) {
      if (b[i] !== 0xed || (b[i + 1]! & 0xe0) !== 0xa0 || (b[i + 2]! & 0xc0) !== 0x80) continue;
      out += (fatal ? strict : lenient).decode(b.subarray(from, i)) + String.fromCharCode(0xd000 | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f));
      from = i + 3;
      i += 2;
    }
    if (from === 0 && fatal) throw e;
    return out + (fatal ? strict : lenient).decode(b.subarray(from));
  }
}
