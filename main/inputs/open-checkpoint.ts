import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyse, type AnalyseOptions, type Checkpoint } from '../checkpoint/inspect.ts';
import type { Prescanned } from '../checkpoint/security.ts';
import { fail } from '../errors.ts';
import { readDcpFolder } from '../formats/dcp/dcp.ts';
import { deepSpeedBytes, readDeepSpeedFolder } from '../formats/deepspeed/read-deepspeed.ts';
import { openFormat } from '../formats/open-format.ts';
import { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import type { FormatReading } from '../formats/values/format-reading.ts';
import { Family, type RankFile } from './family.ts';
import { resolveInput } from './resolve.ts';
import { familyOf, holdsShards } from './sources.ts';

export interface OpenOptions extends AnalyseOptions {
  /**
   * 'consolidate' (what `ckpt convert` and its preview open): a rank file of an FSDP run holding
   * DTensor / ShardedTensor shards opens as the whole family beside it, consolidated into full
   * tensors (its replicated parts must agree on every rank). Otherwise the file is read as it is.
   */
  shardedRanks?: 'as-is' | 'consolidate';
}

/**
 * The one way to open a checkpoint the user pointed at, analysed, with tensor bytes unread:
 * - a file of any format the reader registry knows (`formats/open-format.ts`), including a shard
 *   index (`*.index.json`), which the registry joins into one state dict;
 * - a distributed-checkpoint folder (`.metadata` + `__R_N.distcp`), read as `dcp_to_torch_save`
 *   would load it;
 * - a DeepSpeed ZeRO checkpoint folder (`latest` + tag folders, or a tag folder), consolidated as
 *   DeepSpeed's zero_to_fp32 does;
 * - with `shardedRanks: 'consolidate'`, one rank file of an FSDP run: its whole family, presented
 *   as one virtual checkpoint whose tensors are assembled lazily while a writer streams them.
 * What the path is, `resolveInput` says (the rules re-shard's `openSource` uses too). Each file
 * is opened once.
 */
export function openCheckpoint(input: string, opts: OpenOptions = {}): Checkpoint {
  const { shardedRanks = 'as-is', ...analyseOptions } = opts;
  let reading: FormatReading;
  let fileBytes: number;
  const kind = resolveInput(input);
  const scans = new PrescannedPickles();
  let pickleScans: Prescanned = scans;
  if (kind === 'deepspeed') {
    const ds = readDeepSpeedFolder(input);
    reading = ds;
    fileBytes = deepSpeedBytes(ds);
    pickleScans = ds.pickleScans; // each rank file's, by file
  } else if (kind === 'dcp') {
    const dcp = readDcpFolder(input);
    reading = dcp;
    fileBytes = dcp.dcp.files.reduce((a, f) => a + fs.statSync(path.join(input, f)).size, 0);
  } else {
    // a file or a shard index (the registry joins its shards); a plain folder gets the registry's error
    reading = openFormat(input, { scans });
    if (shardedRanks === 'consolidate' && holdsShards(reading)) return openShardedFamily(input, { file: input, reading, scans });
    fileBytes = fs.statSync(input).size;
  }
  try {
    return analyse(input, reading, { fileBytes, pickleScans, ...analyseOptions });
  } catch (e) {
    reading.close();
    throw e;
  }
}

/** `opened`: the rank file the user named, read already; the family takes it over (or it is closed). */
function openShardedFamily(source: string, opened: Omit<RankFile, 'rank'>): Checkpoint {
  let files: string[] | null = null;
  try {
    files = familyOf(source);
  } finally {
    if (!files) opened.reading.close();
  }
  if (!files)
    fail(
      'usage',
      `${source} holds DTensor/ShardedTensor shards of an FSDP run, but its other rank files are not beside it; put every rank's file in one folder`,
      source,
    );
  const family = Family.open(files, opened);
  try {
    const differing = family.compare();
    if (differing.length) {
      fail(
        'usage',
        `${source}: the ranks of its FSDP family disagree on ${differing.length} replicated tensors or values (${differing
          .slice(0, 3)
          .map((d) => d.name)
          .join(', ')}); \`ckpt reshard ${path.dirname(source)} --to single --take-rank R\` chooses one`,
        source,
      );
    }
    const base = family.ranks[0]!.reading;
    const reading = {
      ...base,
      root: family.merged(0),
      notes: [...base.notes, `consolidated from ${files.length} FSDP rank files: ${files.map((f) => path.basename(f)).join(', ')}`],
      close: () => family.close(),
    };
    return analyse(source, reading, { fileBytes: files.reduce((a, f) => a + fs.statSync(f).size, 0) });
  } catch (e) {
    family.close();
    throw e;
  }
}
