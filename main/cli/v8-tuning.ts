import { setFlagsFromString } from 'node:v8';

// V8 flags the CLI sets at run time, each measured on this project's work. V8 flags are per
// process (workers included) and must be set before the work they tune starts.

/**
 * Only on the V8 these were measured with (11.x, Node 20). Newer V8s tier up differently (Node 22
 * adds Maglev between Sparkplug and TurboFan) and may not know these flags, and V8 prints an
 * error line on stderr for a flag it does not know; there they are left at their defaults.
 */
function setMeasuredFlags(...flags: string[]): void {
  if (!process.versions.v8.startsWith('11.')) return;
  for (const f of flags) setFlagsFromString(f);
}

/**
 * Node compiles its own modules (`fs`, `crypto`, `worker_threads`, …) from a code cache built into
 * the binary, and V8 accepts a code cache only where the flags it was made under (V8's defaults)
 * are the flags in force: with any flag above set, each worker thread compiles them from source
 * (111 modules for a pool worker; `getCacheUsage()` of `internalBinding('builtins')` counts them).
 * On the 2-core machine a pool worker took 180–210 ms instead of 90–130 ms from `new Worker` to
 * its first answer (3 + 3 runs, load 3), and a batch starts two of them at once. So the
 * flags go back to V8's defaults while `startWorkers` runs and the threads load their code (V8
 * flags are per process), and come back once `loaded` settles; a flag's value is read when V8
 * decides, so the jobs the threads run meanwhile only tier up as by default.
 */
export function withV8DefaultsWhileLoading<T extends { loaded(): Promise<unknown> }>(startWorkers: () => T, tune: () => void): T {
  setMeasuredFlags(...V8_DEFAULTS);
  const started = startWorkers();
  void started.loaded().then(tune, () => undefined);
  return started;
}

/**
 * V8 decides per allocation site whether to place new objects straight in the old generation
 * ("pretenuring") once most of a site's objects survive. Reading a state dict, the (key, value)
 * pair a dict keeps per entry is such a site, and whether and when V8 switches made the peak of a
 * 100,000-tensor `inspect --json` bimodal: 227–325 MB over 4 runs with the default (2 above the
 * 300 MB target), 221–224 MB in 4 of 4 without pretenuring, at the same time (2.28–2.91 vs
 * 2.37–3.02 s of CPU; 500,000-tensor inspect and 100,000-tensor convert unchanged), 14:49 on the
 * 2-core machine. Set before any reading and any worker starts.
 */
export function tuneV8ForCli(): void {
  setMeasuredFlags('--no-allocation-site-pretenuring');
}

/** The factor a batch delays TurboFan by (see `delayTurbofanForBatch`), and V8 11.3's defaults it multiplies. */
const TICKS_FACTOR = 8;
const DEFAULT_TICKS_BEFORE_OPTIMIZATION = 3;
const DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK = 150;

/** Each flag this file sets, spelled with V8 11.3's default value. */
const V8_DEFAULTS = [
  '--allocation-site-pretenuring',
  `--ticks-before-optimization=${DEFAULT_TICKS_BEFORE_OPTIMIZATION}`,
  `--bytecode-size-allowance-per-tick=${DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK}`,
];

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
 * earn back its compiles later. Set once the pool's workers have loaded their code
 * (`withV8DefaultsWhileLoading`); not set where the service runs a batch (the app and `ckpt serve` are long-lived and keep V8's defaults).
 */
export function delayTurbofanForBatch(): void {
  setMeasuredFlags(
    `--ticks-before-optimization=${TICKS_FACTOR * DEFAULT_TICKS_BEFORE_OPTIMIZATION}`,
    `--bytecode-size-allowance-per-tick=${Math.round(DEFAULT_BYTECODE_SIZE_ALLOWANCE_PER_TICK / TICKS_FACTOR)}`,
  );
}
