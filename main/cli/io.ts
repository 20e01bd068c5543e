/** Where a command writes; the real process or a test's buffers. */
export interface CliIO {
  stdout(s: string): void;
  stderr(s: string): void;
  /** true when stdout is a terminal that takes colour and redrawn progress lines */
  color: boolean;
  isTTY: boolean;
}

export function processIO(): CliIO {
  const tty = !!process.stdout.isTTY;
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    color: tty && !process.env['NO_COLOR'],
    isTTY: tty,
  };
}
