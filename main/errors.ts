import type { ErrorInfo, ErrorKind } from '../shared/errors.ts';

/** The one error type the engine throws on bad input. `message` is a single line. */
export class CheckpointError extends Error {
  readonly kind: ErrorKind;
  readonly file: string | undefined;
  constructor(kind: ErrorKind, message: string, file?: string) {
    // Names read from a damaged file can hold control characters; the message stays one line.
    super(message.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)));
    this.name = 'CheckpointError';
    this.kind = kind;
    this.file = file;
  }
  toInfo(): ErrorInfo {
    return { kind: this.kind, message: this.message, ...(this.file ? { file: this.file } : {}) };
  }
}

export function fail(kind: ErrorKind, message: string, file?: string): never {
  throw new CheckpointError(kind, message, file);
}

/** What a file system error means to the user, by errno code. */
const IO_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a folder, not a file',
  ENOSPC: 'no space left on the device',
  EROFS: 'the destination is on a read-only file system',
  EFBIG: 'file too large for this file system or for the file size limit (ulimit -f)',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EIO: 'the device reported an input/output error; check the disk (dmesg) or the network file system',
};

/** Turns anything thrown into a CheckpointError, keeping engine errors as they are. */
export function asCheckpointError(err: unknown, file?: string): CheckpointError {
  if (err instanceof CheckpointError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string') {
    const what = IO_ERRORS[e.code] ?? e.message;
    return new CheckpointError('io', `${file ?? e.path ?? 'file'}: ${what}`, file);
  }
  if (err instanceof RangeError) {
    return new CheckpointError('too-large', `${file ?? 'input'}: a declared size is larger than this process can hold (${err.message})`, file);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new CheckpointError('internal', `${file ? file + ': ' : ''}internal error: ${msg.split('\n')[0]}`, file);
}
