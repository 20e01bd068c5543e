import { statSync } from 'node:fs';
import { openFormat } from '../formats/open-format.ts';
import { analyse, type AnalyseOptions, type Checkpoint } from './inspect.ts';

/** Opens a checkpoint file of any supported format and analyses it; tensor bytes stay unread. */
export function openCheckpoint(file: string, opts: AnalyseOptions = {}): Checkpoint {
  const reading = openFormat(file);
  try {
    return analyse(file, reading, { fileBytes: statSync(file).size, ...opts });
  } catch (e) {
    reading.close();
    throw e;
  }
}
