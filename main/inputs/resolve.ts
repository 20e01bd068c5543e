import * as fs from 'node:fs';
import { isDcpFolder } from '../formats/dcp/dcp.ts';
import { isDeepSpeedFolder } from '../formats/deepspeed/locate.ts';
import { isShardIndexName } from '../formats/safetensors/shard-index.ts';

/**
 * What one path the user named is, by the one set of rules both openers use
 * (`openCheckpoint` for inspect and convert, `openSource` for re-shard):
 * - `deepspeed`: a DeepSpeed ZeRO checkpoint folder (`latest` + tag folders, or a tag folder);
 * - `dcp`: a `torch.distributed.checkpoint` folder (`.metadata` + `__R_N.distcp`);
 * - `folder`: any other folder (re-shard looks inside for one shard set or one rank family);
 * - `shard-index`: a Hugging Face `*.index.json`;
 * - `file`: a single container, read by the format registry (`formats/open-format.ts`).
 * Asked in this order.
 */
export type InputKind = 'deepspeed' | 'dcp' | 'folder' | 'shard-index' | 'file';

export function resolveInput(input: string): InputKind {
  // the first two kinds are folders: a file (the usual case; a batch opens hundreds) is known by one stat, not three
  if (isDirectory(input)) {
    if (isDeepSpeedFolder(input)) return 'deepspeed';
    if (isDcpFolder(input)) return 'dcp';
    return 'folder';
  }
  return isShardIndexName(input) ? 'shard-index' : 'file';
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
