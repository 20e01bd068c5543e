// Names and colours of a verification's runs, the same in every chart of the Verify view.
import type { RunResult, VerifyReport } from '../../../../shared/verify.ts';
import { baseName } from '../../lib/format.ts';

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
