import { setFlagsFromString } from 'node:v8';

/**
 * V8 optimizes a function with TurboFan once it has run enough bytecode (its "interrupt
 * budget"), a threshold made for long-lived pages. A `ckpt` command mostly lasts a second or
 * two, in three isolates (the main thread and two workers) that each warm up the same code: in a
 * batch of 200 × 2 MiB checkpoints, perf counted a quarter of all CPU time in TurboFan's
 * background compiles, most of them for functions the run then used for a few hundred
 * milliseconds. Four times the budget (V8 11.3's default is 67,584) compiles only what stays hot:
 * that batch took 20% less CPU and about as much less time (median of 9 runs interleaved with the
 * default), while the 100,000-tensor convert and inspect, whose loops run for seconds, were
 * unchanged within noise. Set before any worker starts; V8 flags are per process, so the workers
 * get it too. This module is imported first by the CLI entry and by nothing else.
 */
const DEFAULT_INTERRUPT_BUDGET = 67_584;

setFlagsFromString(`--interrupt-budget=${4 * DEFAULT_INTERRUPT_BUDGET}`);
