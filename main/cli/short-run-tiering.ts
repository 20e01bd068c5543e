import { setFlagsFromString } from 'node:v8';

/**
 * V8 hands a function to TurboFan after it has run for a number of "ticks" (each a budget of
 * bytecode executed): 3 plus one per 150 bytes of the function's bytecode (V8 11.3's
 * `--ticks-before-optimization` and `--bytecode-size-allowance-per-tick`, tuned for long-lived
 * pages). A `ckpt` command mostly lasts a second or two, in three isolates (the main thread and
 * two workers) that each warm up the same code: in a batch of 200 × 2 MiB checkpoints, perf
 * counted 23–27% of all CPU samples in TurboFan's background compiles, most of them for functions
 * (the unpickler's loop, twice per worker) that the run then used for a few hundred milliseconds.
 *
 * Eight times the ticks compiles only what stays hot. The tick itself is unchanged, so code still
 * moves to the baseline compiler (Sparkplug) as early as before; raising the interrupt budget
 * instead delays that too, and the first files ran slower. Medians of 15 interleaved runs (load
 * 4–5 on 2 cores): 2.56 → 2.29 s CPU; of 7: 1.57 → 1.47 s wall. The 100,000-tensor convert and
 * inspect, whose loops run for seconds, were unchanged within noise. Set before any worker starts
 * (V8 flags are per process, so the workers get them); imported first by the CLI entry only.
 */
const TICKS_FACTOR = 8;
const DEFAULT_TICKS_BEFORE_OPTIMIZATION = 3;
const DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK = 150;

/**
 * Only on the V8 this was measured with (11.x, Node 20). Newer V8s tier up differently (Node 22
 * adds Maglev between Sparkplug and TurboFan) and may not know these flags, and V8 prints an
 * error line on stderr for a flag it does not know; there they are left at their defaults.
 */
const tieringAdjusted = process.versions.v8.startsWith('11.');

if (tieringAdjusted) {
  setFlagsFromString(`--ticks-before-optimization=${TICKS_FACTOR * DEFAULT_TICKS_BEFORE_OPTIMIZATION}`);
  setFlagsFromString(`--bytecode-size-allowance-per-tick=${Math.round(DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK / TICKS_FACTOR)}`);
}
