// The last verification report of each workspace, kept in localStorage so a reload (or the next
// visit) shows it again, marked with the time it was made.
import type { VerifyReport } from '../../../shared/verify.ts';
import { forget, loadStored, store } from '../lib/stored.ts';

const KEY = 'ckpt.verify.report:';

export interface SavedReport {
  /** when the run finished, ms since the epoch */
  savedAt: number;
  report: VerifyReport;
}

export function savedReport(workspace: string): SavedReport | null {
  const v = loadStored(KEY + workspace) as Partial<SavedReport> | null;
  const r = v?.report as Partial<VerifyReport> | undefined;
  if (typeof v?.savedAt !== 'number' || !r || !['PASS', 'WARN', 'FAIL'].includes(r.verdict ?? '') || !Array.isArray(r.runs)) return null;
  return v as SavedReport;
}

/** false when storage refused it (a report with many examples can outgrow it) */
export function saveReport(workspace: string, report: VerifyReport, savedAt = Date.now()): boolean {
  return store(KEY + workspace, { savedAt, report } satisfies SavedReport);
}

export function forgetReport(workspace: string): void {
  forget(KEY + workspace);
}
