import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyse, type Checkpoint } from '../checkpoint/inspect.ts';
import { openCheckpoint } from '../checkpoint/open-checkpoint.ts';
import { fail } from '../errors.ts';
import { openFormat } from '../formats/open-format.ts';
import { Family } from './family.ts';
import { familyOf, holdsShards } from './sources.ts';

/**
 * What `ckpt convert` opens: a checkpoint file as before, or one checkpoint spread over several
 * files, presented as one virtual checkpoint whose tensors are assembled lazily while the
 * converter's writer streams them:
 * - a DCP folder (`.metadata` + `__R_N.distcp`), read as `dcp_to_torch_save` would load it
 *   (`openCheckpoint` opens these itself);
 * - one rank file of an FSDP run holding DTensor / ShardedTensor shards: the whole family beside
 *   it is consolidated into full tensors (its replicated parts must agree on every rank).
 * Shard indexes (`*.index.json`) were already opened as one checkpoint by the format reader.
 */
export function openConvertInput(source: string): Checkpoint {
  let sharded = false;
  try {
    if (fs.statSync(source).isFile()) {
      const r = openFormat(source);
      try {
        sharded = holdsShards(r);
      } finally {
        r.close();
      }
    }
  } catch {
    // the converter's own open reports the problem
  }
  if (!sharded) return openCheckpoint(source);
  const files = familyOf(source);
  if (!files) fail('usage', `${source} holds DTensor/ShardedTensor shards of an FSDP run, but its other rank files are not beside it; put every rank's file in one folder`, source);
  const family = Family.open(files);
  try {
    const differing = family.compare();
    if (differing.length) {
      fail('usage', `${source}: the ranks of its FSDP family disagree on ${differing.length} replicated tensors or values (${differing.slice(0, 3).map((d) => d.name).join(', ')}); \`ckpt reshard ${path.dirname(source)} --to single --take-rank R\` chooses one`, source);
    }
    const base = family.ranks[0]!.reading;
    const reading = { ...base, root: family.merged(0), notes: [...base.notes, `consolidated from ${files.length} FSDP rank files: ${files.map((f) => path.basename(f)).join(', ')}`], close: () => family.close() };
    return analyse(source, reading, { fileBytes: files.reduce((a, f) => a + fs.statSync(f).size, 0) });
  } catch (e) {
    family.close();
    throw e;
  }
}
