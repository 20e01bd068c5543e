import { openCheckpoint } from '../../main/inputs/open-checkpoint.ts';

/** The tensors of a checkpoint file as the engine reads them, each by its dotted path, in the file's order. */
export function tensorKeys(file: string): string[] {
  const ck = openCheckpoint(file);
  try {
    return ck.tensors.map((t) => t.path.join('.'));
  } finally {
    ck.close();
  }
}
