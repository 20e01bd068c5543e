import { setFlagsFromString } from 'node:v8';

/**
 * V8 hands a function to TurboFan after it has run for a number of "ticks" (each a budget of
 * bytecode executed): 3 plus one per 150 bytes of the function's bytecode (V8 11.3's
 * `--ticks-before-optimization` and `--bytecode-size-allowance-per-tick`, tuned for long-lived
 * pages). A batch warms the same code up in three isolates (the main thread and two workers), and
 * for a folder of small checkpoints most of what TurboFan compiles runs for a few hundred
 * milliseconds afterwards: perf counted 23–27% of all CPU samples of a 200 × 2 MiB batch in
 * TurboFan's background compiles, `--trace-opt` 335 ms of them for the unpickler's loop alone
 * (compiled four times, twice per worker).
 *
 * Eight times the ticks compiles only what stays hot; the tick itself is unchanged, so code moves
 * to the baseline compiler (Sparkplug) as early as before. Measured on that batch, 9 interleaved
 * runs at load 6–8 on 2 cores: 1.95 → 1.69 s of CPU (medians). Only for folder conversions:
 * the same flags made a 10,000-tensor `inspect` 14% slower (commit e05714d), a run too short to
 * earn back its compiles later. V8 flags are per process and read when a function is considered
 * for optimization, so this is set before the pool's workers start; it is not set where the
 * service runs a batch (the app and `ckpt serve` are long-lived and keep V8's defaults).
 */
const TICKS_FACTOR = 8;
const DEFAULT_TICKS_BEFORE_OPTIMIZATION = 3;
const DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK = 150;

/**
 * Only on the V8 this was measured with (11.x, Node 20). Newer V8s tier up differently (Node 22
 * adds Maglev between Sparkplug and TurboFan) and may not know these flags, and V8 prints an
 * error line on stderr for a flag it does not know; there they are left at their defaults.
 */
export function delayTurbofanForBatch(): void {
  if (!process.versions.v8.startsWith('11.')) return;
  setFlagsFromString(`--ticks-before-optimization=${TICKS_FACTOR * DEFAULT_TICKS_BEFORE_OPTIMIZATION}`);
  setFlagsFromString(`--bytecode-size-allowance-per-tick=${Math.round(DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK / TICKS_FACTOR)}`);
}
