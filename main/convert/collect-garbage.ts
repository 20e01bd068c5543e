import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * From this many tensors a conversion collects its garbage at the end of each phase: after
 * reading, between writing and reading back, and before its report is packed. At 100,000 tensors
 * (keys_100k.pt → cpu) it no longer pays: since the pickler makes no objects per plain tensor,
 * the peak without it is 263–268 MB (258–261 MB with it), and the collections cost ~200 ms of CPU
 * of 2.5 s (4 interleaved runs each, load 6 on 2 cores); a torch zip's reading leaves only ~15 MB
 * of garbage. At 500,000 (safetensors) they are kept: measures below.
 */
const MANY_TENSORS = 200_000;

/** V8's `gc`, once found (null where none can be had) */
let gc: (() => void) | null | undefined;

/**
 * A full garbage collection, now. V8 sizes the next heap limit from what was live at the last
 * full collection, and until then frees no array buffer: reading a checkpoint of many tensors
 * leaves garbage (for 500,000 one-element tensors in safetensors, ~80 MB of heap and the 46 MB
 * header buffer) that the conversion's own work then piles on before V8 collects it, and a
 * finished conversion leaves its read-back (the written data.pkl read back, the matching) for
 * the report's packing and sending to pile on. Measured on keys_500k.safetensors → cpu (2 cores):
 * peak RSS 620 → 498 MB with a collection after reading, at ~160 ms; with one between writing
 * and reading back too (4 + 4 interleaved runs on the idle 2-core machine) 451–466 MiB against
 * 460–487 MiB without (the bench's 485 MB, 15 MiB under issue 16's budget), at ~0.3 s of 6–7 s.
 * (Before the pickler stopped making objects per plain tensor, one before packing also lowered
 * keys_100k.pt → cpu from 320–329 to 290 MB; `MANY_TENSORS` says why it no longer runs there.)
 *
 * `gc` is V8's, exposed by `--expose-gc` in contexts made after the flag is set (a new `vm`
 * context here); where that is refused, nothing is collected. The flag is set only while that
 * context is made, then back to V8's default: V8 flags are per process, and V8 accepts Node's
 * built-in code cache only under the flags it was made with, so with the flag left set every
 * worker started later (the app's and `ckpt serve`'s pools after a conversion of many tensors)
 * compiled Node's own modules from source (see main/cli/v8-tuning.ts). The function made stays
 * usable. Where the process was started with the flag (`node --expose-gc`), its own `gc` is used.
 */
export function collectGarbage(): void {
  if (gc === undefined) gc = exposedGc();
  gc?.();
}

function exposedGc(): (() => void) | null {
  const own: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as () => void;
  try {
    setFlagsFromString('--expose-gc');
    try {
      const f: unknown = runInNewContext('gc');
      return typeof f === 'function' ? (f as () => void) : null;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  } catch {
    return null;
  }
}

/** `collectGarbage` at the end of a phase of a conversion of `tensors` tensors, from `MANY_TENSORS` of them. */
export function collectGarbageOfPhase(tensors: number): void {
  if (tensors >= MANY_TENSORS) collectGarbage();
}
