import { formatBytes } from './format-text.ts';
import type { CliIO } from './io.ts';

/** A progress bar redrawn in place on a terminal (at most ~10 times a second). */
export class ProgressLine {
  private last = 0;
  private shown = false;
  private readonly start = performance.now();
  constructor(private readonly io: CliIO) {}

  update(done: number, total: number, label: string, elapsedS = (performance.now() - this.start) / 1000): void {
    const now = performance.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const frac = total ? Math.min(1, done / total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const rate = elapsedS > 0 ? done / elapsedS : 0;
    const eta = rate > 0 && total > done ? `ETA ${Math.ceil((total - done) / rate)} s` : '';
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)}/${formatBytes(total)}  ${formatBytes(rate)}/s  ${eta}  ${label}`;
    this.io.stdout(`\r\x1b[2K${line.slice(0, (process.stdout.columns || 120) - 1)}`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) this.io.stdout('\r\x1b[2K');
    this.shown = false;
  }
}
