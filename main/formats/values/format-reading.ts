import type { PyValue } from './python-values.ts';

import type { CheckpointFormatName } from '../../../shared/inspect.ts';

export type CheckpointFormat = CheckpointFormatName;

/** A global name a pickle referenced (GLOBAL, STACK_GLOBAL or INST), with how it was used. */
export interface GlobalRef {
  module: string;
  name: string;
  /** which pickle record inside the file, e.g. `data.pkl` */
  record: string;
  /** how many times it was called (REDUCE/NEWOBJ/INST/OBJ), vs. only referenced */
  calls: number;
}

/**
 * What a format reader gives back: the container tree, with lazy tensors in it, and the facts
 * about the file that `inspect` shows. Nothing here has read tensor bytes yet.
 */
export interface FormatReading {
  format: CheckpointFormat;
  /** version records and similar facts, shown as-is (e.g. `version: 3`, `byteorder: little`) */
  records: Record<string, string>;
  root: PyValue;
  /** every global referenced by every pickle in the file */
  globals: GlobalRef[];
  /** TorchScript only: the module tree's code files and the constants table */
  torchscript?: { codeFiles: string[]; constants: PyValue | null };
  /** things worth telling the user that are not errors */
  notes: string[];
  close(): void;
}
