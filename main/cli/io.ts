/** Where a command writes; the real process or a test's buffers. */
export interface CliIO {
  stdout(s: string): void;
  /** Bytes for stdout, in order with `stdout`'s text (absent: a long list is written as text) */
  stdoutBytes?(b: Uint8Array): void;
  stderr(s: string): void;
  /**
   * Resolves once stdout takes more: a pipe's writes are queued in memory while its reader is
   * behind, so a long output waits here between pieces (absent: writes never wait).
   */
  stdoutRoom?(): Promise<void>;
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
    stdoutBytes: (b) => void (readerGone || process.stdout.write(b)),
    stdoutRoom: () => {
      const out = process.stdout;
      if (readerGone || !out.writableNeedDrain) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = (): void => {
          out.off('drain', done).off('close', done).off('error', done);
          resolve();
        };
        out.once('drain', done).once('close', done).once('error', done);
      });
    },
    stderr: (s) => process.stderr.write(s),
    color: tty && !process.env['NO_COLOR'],
    isTTY: tty,
  };
}
