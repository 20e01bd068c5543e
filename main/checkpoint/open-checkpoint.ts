import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDcpFolder, readDcpFolder } from '../formats/dcp.ts';
import { deepSpeedBytes, readDeepSpeedFolder } from '../formats/deepspeed/read-deepspeed.ts';
import { isDeepSpeedFolder } from '../formats/deepspeed/locate.ts';
import type { FormatReading } from '../formats/format-reading.ts';
import { openFormat } from '../formats/open-format.ts';
import { analyse, type AnalyseOptions, type Checkpoint } from './inspect.ts';

/**
 * Opens a checkpoint of any supported format and analyses it; tensor bytes stay unread. A
 * distributed-checkpoint folder (`.metadata` + `__R_N.distcp`) is one checkpoint too, and so is a
 * DeepSpeed ZeRO folder (consolidated as zero_to_fp32 does).
 */
export function openCheckpoint(file: string, opts: AnalyseOptions = {}): Checkpoint {
  let reading: FormatReading;
  let fileBytes: number;
  if (isDeepSpeedFolder(file)) {
    const ds = readDeepSpeedFolder(file);
    reading = ds;
    fileBytes = deepSpeedBytes(ds);
  } else if (isDcpFolder(file)) {
    const dcp = readDcpFolder(file);
    reading = dcp;
    fileBytes = dcp.dcp.files.reduce((a, f) => a + fs.statSync(path.join(file, f)).size, 0);
  } else {
    reading = openFormat(file);
    fileBytes = fs.statSync(file).size;
  }
  try {
    return analyse(file, reading, { fileBytes, ...opts });
  } catch (e) {
    reading.close();
    throw e;
  }
}
