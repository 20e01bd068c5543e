/**
 * Error kinds shared by the engine, the CLI and the UI. An error is a value with a kind and
 * one line that says what is wrong and what to do; the CLI prints that line and exits 2.
 */
export type ErrorKind =
  | 'not-a-checkpoint' // the bytes are not any format we know
  | 'lfs-pointer' // a Git LFS pointer file instead of the real object
  | 'truncated' // the file ends before its own structures say it should
  | 'corrupt-zip' // a zip archive whose directory or headers do not add up
  | 'bad-pickle' // a pickle stream that is malformed
  | 'unsupported' // a real format variant we recognise but do not read
  | 'too-large' // a declared size that cannot be right for this file
  | 'io' // the operating system refused a read or a write
  | 'usage' // the command line was wrong
  | 'exists' // the destination exists and --force was not given
  | 'verify-failed' // a written file did not read back as planned
  | 'cancelled'
  | 'python' // the user's model code or torch failed inside their own Python (verify --python)
  | 'internal';

export interface ErrorInfo {
  kind: ErrorKind;
  message: string;
  file?: string;
  /** more than the one line, when there is more to see (the user's own Python traceback) */
  details?: string;
}
