/**
 * Re-sharding (issue 7): plain serialisable data shared by the engine, the `ckpt reshard` CLI and
 * the Re-shard view. A re-shard reads one checkpoint that may be spread over several files (rank
 * files, a distributed-checkpoint folder, a shard set), and writes it with another spread.
 *
 * The view shows two `ShardLayout`s side by side: files (or ranks) as columns, tensors as rows,
 * each cell the pieces of that tensor the file holds, with their offsets in the global tensor.
 */
import type { Progress } from './convert.ts';
import * as v from 'valibot';
import { absolutePath, bool, fields, list, oneOf, show, variantFields, wholeNumber } from './checks.ts';
import { CAST_FIELDS, PresetSchema, type CastSummary } from './presets.ts';

/**
 * What the input is:
 * - `single`: one checkpoint file (torch or safetensors)
 * - `shard-set`: Hugging Face shards with their `*.index.json`
 * - `rank-family`: per-rank files of a data-parallel run, each a full copy (DDP)
 * - `sharded-ranks`: per-rank files holding DTensor / ShardedTensor shards (FSDP SHARDED_STATE_DICT)
 * - `dcp`: a `torch.distributed.checkpoint` folder (`.metadata` + `__R_N.distcp`)
 * - `deepspeed`: a DeepSpeed ZeRO checkpoint folder (per-rank flat fp32 partitions)
 */
export type ReshardInputKind = 'single' | 'shard-set' | 'rank-family' | 'sharded-ranks' | 'dcp' | 'deepspeed';

export const ReshardTargetSchema = v.variant(
  'kind',
  [
    variantFields({ kind: v.literal('single') }),
    /** one file per data-parallel rank, ddp preset ('module.' keys, rank r on cuda:r) */
    variantFields({ kind: v.literal('ranks'), count: wholeNumber(1, 4096) }),
    /** a DCP folder; every tensor is split along dim 0 over `ranks` data files */
    variantFields({ kind: v.literal('dcp'), ranks: wholeNumber(1, 4096) }),
    /** Hugging Face shards no bigger than `maxShardBytes` each, plus their index */
    variantFields({ kind: v.literal('shards'), maxShardBytes: wholeNumber(1, Number.MAX_SAFE_INTEGER) }),
  ],
  (issue) => (issue.path ? `must be single, ranks, dcp or shards, not ${show(issue.input)}` : `must be an object, not ${show(issue.input)}`),
);
export type ReshardTarget = v.InferOutput<typeof ReshardTargetSchema>;

export type ReshardFormat = 'torch' | 'safetensors';

/** A re-shard as the API takes it: every field present; inputs and output absolute paths. */
export const ReshardRequestSchema = fields({
  /** files, or one folder (a DCP folder, a folder with one shard index or one rank family) */
  inputs: v.pipe(list(absolutePath), v.minLength(1, 'must name at least one file or folder')),
  target: ReshardTargetSchema,
  /** for single and shards: the file format written (DCP and rank files are always torch) */
  format: oneOf(['torch', 'safetensors']),
  /** the output file (single), the base name of rank files (ranks), or a folder (dcp, shards) */
  output: absolutePath,
  force: bool,
  /** torch single outputs: keys and devices as this conversion preset sets them; null keeps them */
  preset: v.nullable(PresetSchema),
  /** ranks that differ are merged only when this says which rank's values to write */
  takeRank: v.nullable(wholeNumber(0, 65535)),
  /** plan only: read the layout, write nothing */
  dryRun: bool,
  ...CAST_FIELDS,
  /** `--keep-objects`: torch outputs keep classes torch.load(weights_only=True) refuses (listed in the plan) */
  keepObjects: v.exactOptional(bool),
});
export type ReshardRequest = v.InferOutput<typeof ReshardRequestSchema>;

/** A column of a layout: one file. */
export interface LayoutColumn {
  file: string;
  /** the rank the file belongs to, for rank files and DCP data files (`__R_N.distcp`) */
  rank: number | null;
  bytes: number;
  /** `data` holds tensors; `metadata` is a DCP `.metadata`; `index` is a shard index */
  role: 'data' | 'metadata' | 'index';
}

/** The part of one tensor a column holds, in global coordinates. */
export interface LayoutPiece {
  column: number;
  offsets: number[];
  sizes: number[];
  bytes: number;
  /** this piece repeats another column's piece (replicated data: DDP ranks, Replicate placements) */
  replica: boolean;
}

/** A row of a layout: one tensor of the whole checkpoint. */
export interface LayoutRow {
  /** the flattened name (`model.conv1.weight`, as DCP and safetensors name it) */
  name: string;
  /** the path in the nested checkpoint */
  path: (string | number)[];
  dtype: string;
  shape: number[];
  bytes: number;
  pieces: LayoutPiece[];
  /** `whole`: in one piece; `sharded`: split over columns; `replicated`: whole in several columns */
  spread: 'whole' | 'sharded' | 'replicated';
}

/** Non-tensor content (epoch, hyper-parameters, lists of names): where it is and what it is. */
export interface LayoutItem {
  name: string;
  path: (string | number)[];
  type: string;
  summary: string;
  column: number | null;
}

export interface ShardLayout {
  kind: ReshardInputKind | 'output';
  /** one line, e.g. `DCP folder, 2 ranks, 63 items` */
  title: string;
  columns: LayoutColumn[];
  rows: LayoutRow[];
  items: LayoutItem[];
  notes: string[];
}

/** Tensors that several names point at: written once, the other names are aliases. */
export interface TensorAlias {
  alias: string;
  kept: string;
}

/** Content the target format cannot hold: reported, never silently lost. */
export interface DroppedItem {
  name: string;
  type: string;
  reason: string;
}

/** A tensor (or value) that is not the same on every rank of a family. */
export interface TensorDifference {
  name: string;
  path: (string | number)[];
  /** ranks whose value differs from the lowest rank's */
  ranks: number[];
  reason: string;
  /** per rank: the sha256 of the tensor's bytes (or '' where the rank lacks it) */
  hashes?: string[];
}

export interface ReshardPlan {
  request: ReshardRequest;
  input: ShardLayout;
  output: ShardLayout;
  aliases: TensorAlias[];
  dropped: DroppedItem[];
  /** bytes of tensor data to write (all outputs) */
  totalBytes: number;
  warnings: string[];
  /** problems that stop the re-shard */
  errors: string[];
  /** torch outputs: values made plain data and globals kept so that the output carries no code (main/reshard/code-free.ts) */
  codeFree?: { converted: string[]; kept: string[] };
}

export interface ReshardProgress extends Progress {
  /** `compare`: hashing the ranks of a family; `write`: copying; `verify`: reading the result back */
  phase: 'compare' | 'write' | 'verify';
}

export interface TensorVerdict {
  name: string;
  ok: boolean;
  /** CRC-32 of the bytes as read back from the written file */
  crc32: string;
  problem?: string;
}

export interface OutputCheck {
  file: string;
  bytes: number;
  tensors: number;
  verified: boolean;
  /** the first mismatch, when not verified */
  mismatch?: string;
  checks: TensorVerdict[];
}

export interface ReshardReport {
  plan: ReshardPlan;
  /** tensors that differ between the ranks of a family (empty when identical or not a family) */
  differing: TensorDifference[];
  /** false for a dry run, a refused merge or a failed verification (nothing is left behind) */
  written: boolean;
  outputs: OutputCheck[];
  verified: boolean;
  /** pieces of assembled tensors re-read from the written file and matched against their source */
  pieceChecks: number;
  seconds: number;
  bytesCopied: number;
  /** `--dtype`: what was cast, and the values that overflowed or underflowed */
  cast?: CastSummary;
}
