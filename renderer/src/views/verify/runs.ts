// Names and colours of a verification's runs, the same in every chart of the Verify view.
import type { RunResult, VerifyReport } from '../../../../shared/verify.ts';
import { baseName, formatSeconds } from '../../lib/format.ts';

/** `checkpoint` is the one verified, `against` its source, `graph` the weights exported into the graph. */
export function runName(report: VerifyReport, run: RunResult): string {
  if (run.label === 'checkpoint') return report.options.against ? 'Converted' : 'Checkpoint';
  if (run.label === 'against') return 'Source';
  if (run.label === 'graph') return "Graph's own weights";
  return run.label;
}

export function runFile(run: RunResult): string {
  return run.file ? baseName(run.file) : 'as exported into the ONNX graph';
}

/** CSS colour of a run: the verified one in the accent colour, its reference in orange. */
export function runColor(index: number): string {
  return ['var(--accent)', 'var(--dev-3)', 'var(--dev-1)'][index % 3]!;
}

export function className(report: VerifyReport, c: number): string {
  return report.data.classNames?.[c] ?? String(c);
}

/** Throughputs closer than this (as a fraction of the faster) are one timed pass's noise. */
export const SPEED_NOISE = 0.25;
/** Runs shorter than this (seconds of inference) are too short for their speeds to be compared. */
export const SPEED_MIN_SECONDS = 0.5;

/**
 * What the runs' throughputs say, so that two runs of the same weights never read as "Converted
 * is slower": each run is timed once, so a run under SPEED_MIN_SECONDS or a gap under SPEED_NOISE
 * is called noise.
 */
export function speedNote(report: VerifyReport): string {
  const timed = report.runs.filter((x) => x.imagesPerSecond > 0);
  if (timed.length < 2) return 'one timed pass';
  const shortest = Math.min(...timed.map((x) => x.inferenceSeconds));
  if (shortest < SPEED_MIN_SECONDS) return `too short to compare: ${formatSeconds(shortest)} of inference in the shorter run, one timed pass each`;
  const speeds = timed.map((x) => x.imagesPerSecond);
  const fast = Math.max(...speeds);
  const slow = Math.min(...speeds);
  const apart = Math.round(((fast - slow) / fast) * 100);
  if ((fast - slow) / fast < SPEED_NOISE) return `within timing noise: ${apart}% apart, one timed pass each`;
  const fastest = timed[speeds.indexOf(fast)]!;
  return `${runName(report, fastest)} ran ${(fast / slow).toFixed(1)}× as fast (one timed pass each; run again to confirm)`;
}
