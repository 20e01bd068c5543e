/**
 * Text of a byte range of a Buffer, read by the native slicers behind
 * `Buffer#toString(encoding, start, end)` (Node's lib/buffer.js: `toString` looks the encoding up
 * with `getEncodingOps` and clamps the range, then calls `latin1Slice` or `utf8Slice`). A
 * 100,000-tensor checkpoint decodes 100,000 zip entry names and 200,000 pickle strings of about 20
 * bytes: run once per process, mostly before V8 optimizes the callers, the wrapper cost about
 * twice the decode itself (cold `--cpu-prof` of `ckpt inspect`: toString, slice and getEncodingOps
 * 15 ms of 20 ms for the dict keys alone).
 *
 * The range must lie inside the buffer (the slicers throw a RangeError otherwise, where
 * `toString` would clamp it); callers have checked it against the bytes they read.
 */
interface NativeSlicers {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

const slicers = Buffer.prototype as unknown as Partial<NativeSlicers>;
const native = typeof slicers.latin1Slice === 'function' && typeof slicers.utf8Slice === 'function';

/** Bytes `start`…`end` of `b`, one character per byte. */
export function latin1Text(b: Buffer, start: number, end: number): string {
  return native ? (b as unknown as NativeSlicers).latin1Slice(start, end) : b.toString('latin1', start, end);
}

/** Bytes `start`…`end` of `b` decoded as UTF-8 (invalid sequences become U+FFFD, as `toString` makes them). */
export function utf8Text(b: Buffer, start: number, end: number): string {
  return native ? (b as unknown as NativeSlicers).utf8Slice(start, end) : b.toString('utf8', start, end);
}

/**
 * Bytes `start`…`end` of `b` as text when they are all ASCII (then UTF-8, latin-1 and ASCII read
 * them alike), else null: a pickle's keys and names, without a decoder call.
 */
export function asciiText(b: Buffer, start: number, end: number): string | null {
  for (let i = start; i < end; i++) if (b[i]! >= 0x80) return null;
  return latin1Text(b, start, end);
}
