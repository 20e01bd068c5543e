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
  // `ckpt inspect … | head`: once the reader has gone, the rest of the output has nowhere to go;
  // the command ends quietly (a write error other than EPIPE still ends it with that error)
  let readerGone = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    readerGone = true;
  });
  return {
    stdout: (s) => void (readerGone || process.stdout.write(s)),
    stderr: (s) => process.stderr.write(s),
    color: tty && !process.env['NO_COLOR'],
    isTTY: tty,
  };
}
