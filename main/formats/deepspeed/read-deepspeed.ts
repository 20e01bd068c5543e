/**
 * A DeepSpeed ZeRO checkpoint folder (stages 1–3) read as ONE checkpoint: the state dict
 * zero_to_fp32 consolidates it into (./consolidate.ts), with lazy tensors; or, for a PyTorch
 * Lightning `*.ckpt/` folder, the dict Lightning's `convert_zero_checkpoint_to_fp32_state_dict`
 * saves (lightning/pytorch/utilities/deepspeed.py): rank 0's model-states dict without DeepSpeed's
 * own entries, plus `state_dict` (keys without the `_forward_module.` prefix of Lightning < 2.1).
 *
 * World size and stage come from the optimizer files (`partition_count`, `zero_stage`), as in
 * zero_to_fp32's `parse_optim_states`; a missing rank file or a count that does not agree is a
 * one-line error naming what is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { asCheckpointError, fail } from '../../errors.ts';
import type { FormatReading, GlobalRef } from '../values/format-reading.ts';
import type { PrescannedPickles } from '../torch/torch-zip.ts';
import { PyDict } from '../values/python-values.ts';
import { consolidate, type ConsolidatedEntry } from './consolidate.ts';
import { locateDeepSpeed, missingRankFiles, rankOf, type DeepSpeedFiles } from './locate.ts';
import { readModelStates, readOptimStates, type LossScalerInfo, type ModelStates, type OptimStates } from './zero-states.ts';

export type ZeroPrecision = 'fp32' | 'bf16' | 'fp16';

/** What `inspect` shows about a ZeRO checkpoint (plain data). */
export interface ZeroSummary {
  stage: number;
  worldSize: number;
  precision: ZeroPrecision;
  tag: string;
  tagFrom: DeepSpeedFiles['tagFrom'];
  dsVersion: string | null;
  lightning: boolean;
  modelFiles: string[];
  optimFiles: string[];
  /** trainable params per group: names and element counts */
  paramGroups: { params: number; numel: number }[];
  frozen: string[];
  /** alias → owner */
  shared: [string, string][];
  buffers: string[];
  optimizerState: boolean;
  lossScaler: LossScalerInfo | null;
  /** bytes of the consolidated model if every floating tensor were this dtype */
  sizeAs: { fp32: number; bf16: number; fp16: number };
}

export interface DeepSpeedReading extends FormatReading {
  zero: ZeroSummary;
  entries: ConsolidatedEntry[];
  /** each rank file's pickle scan, made while it was read, by file: its security scan needs no second walk */
  pickleScans: Map<string, PrescannedPickles>;
}

export interface DeepSpeedOptions {
  tag?: string;
  excludeFrozen?: boolean;
}

function precisionOf(optimFiles: string[], m0: ModelStates): ZeroPrecision {
  if (optimFiles.every((f) => path.basename(f).startsWith('bf16_'))) return 'bf16';
  const cfg = m0.dict.get('ds_config');
  const fp16 = cfg instanceof PyDict ? cfg.get('fp16') : undefined;
  if (fp16 instanceof PyDict && fp16.get('enabled') === true) return 'fp16';
  const bf16 = cfg instanceof PyDict ? cfg.get('bf16') : undefined;
  if (bf16 instanceof PyDict && bf16.get('enabled') === true) return 'bf16';
  return 'fp32';
}

/** zero_to_fp32's `parse_optim_states` checks, with the missing piece named. */
function checkRanks(files: DeepSpeedFiles, optims: OptimStates[]): void {
  const o0 = optims[0]!;
  const ws = o0.worldSize;
  for (const o of optims) {
    if (o.stage !== o0.stage)
      fail(
        'not-a-checkpoint',
        `${path.basename(o.file)}: ZeRO stage ${o.stage}, but ${path.basename(o0.file)} says ${o0.stage}; files of two runs are mixed`,
        o.file,
      );
    if (o.worldSize !== ws)
      fail(
        'not-a-checkpoint',
        `${path.basename(o.file)}: partition_count ${o.worldSize}, but ${path.basename(o0.file)} says ${ws}; files of two runs are mixed`,
        o.file,
      );
  }
  const n = files.optimFiles.length;
  if (n < ws) {
    const missing = missingRankFiles(files.optimFiles, ws);
    fail(
      'truncated',
      `${files.tagDir}: ZeRO-${o0.stage} world size ${ws} needs ${ws} *_optim_states.pt files, found ${n}: missing ${missing.slice(0, 4).join(', ')}`,
      files.tagDir,
    );
  }
  if (n > ws)
    fail(
      'not-a-checkpoint',
      `${files.tagDir}: ${n} *_optim_states.pt files but partition_count says world size ${ws}; remove the files of an older run (ranks ${
        files.optimFiles
          .map(rankOf)
          .filter((r) => r !== null && r >= ws)
          .join(', ') || '?'
      })`,
      files.tagDir,
    );
  const ranks = files.optimFiles.map(rankOf);
  if (ranks.some((r, i) => r !== null && r !== i))
    fail('not-a-checkpoint', `${files.tagDir}: the optimizer files are ranks ${ranks.join(', ')}, not 0 to ${ws - 1}`, files.tagDir);
}

function modelFilesFor(files: DeepSpeedFiles, stage: number, ws: number): string[] {
  if (stage <= 2) {
    // zero_to_fp32 reads every *_model_states.pt; ZeRO 1/2 writes one (`mp_rank_00_model_states.pt`)
    return files.modelFiles;
  }
  const perRank = files.modelFiles.filter((f) => rankOf(f) !== null);
  if (perRank.length < ws) {
    const missing = missingRankFiles(perRank.length ? perRank : [path.join(files.tagDir, 'zero_pp_rank_0_mp_rank_00_model_states.pt')], ws);
    fail(
      'truncated',
      `${files.tagDir}: ZeRO-3 world size ${ws} needs ${ws} zero_pp_rank_R_mp_rank_00_model_states.pt files, found ${perRank.length}: missing ${missing.slice(0, 4).join(', ')}`,
      files.tagDir,
    );
  }
  if (perRank.length > ws)
    fail(
      'not-a-checkpoint',
      `${files.tagDir}: ${perRank.length} ZeRO-3 model-states files but world size ${ws}; remove the files of an older run`,
      files.tagDir,
    );
  return perRank;
}

/** Lightning's saved dict: the client state of the model-states file, then `state_dict`. */
const DEEPSPEED_STATES = new Set([
  'module',
  'optimizer',
  'lr_scheduler',
  'csr_tensor_module_names',
  'skipped_steps',
  'global_steps',
  'dp_world_size',
  'mp_world_size',
]);

function lightningRoot(model: ModelStates, stateDict: PyDict): PyDict {
  const root = new PyDict(false);
  for (const [k, v] of model.dict.entries) if (!(typeof k === 'string' && DEEPSPEED_STATES.has(k))) root.set(k, v);
  const sd = new PyDict(false);
  for (const [k, v] of stateDict.entries) {
    const key = typeof k === 'string' && k.startsWith('_forward_module.') ? k.slice('_forward_module.'.length) : k;
    sd.set(key, v);
  }
  root.set('state_dict', sd);
  return root;
}

export function readDeepSpeedFolder(input: string, opts: DeepSpeedOptions = {}): DeepSpeedReading {
  const files = locateDeepSpeed(input, opts.tag);
  const opened: { reading: FormatReading }[] = [];
  const closeAll = (): void => opened.forEach((o) => o.reading.close());
  try {
    const optims = files.optimFiles.map((f) => {
      const o = readOptimStates(f);
      opened.push(o);
      return o;
    });
    checkRanks(files, optims);
    const { stage, worldSize } = optims[0]!;
    const models = modelFilesFor(files, stage, worldSize).map((f) => {
      const m = readModelStates(f);
      opened.push(m);
      return m;
    });
    const m0 = models[0]!;
    if (m0.dpWorldSize !== null && m0.dpWorldSize !== worldSize) {
      fail(
        'not-a-checkpoint',
        `${path.basename(m0.file)}: dp_world_size ${m0.dpWorldSize}, but the optimizer states are partitioned over ${worldSize} ranks; files of two runs are mixed`,
        m0.file,
      );
    }
    const { root, entries } = consolidate(models, optims, opts.excludeFrozen ?? false);
    const precision = precisionOf(files.optimFiles, m0);
    const trainable = entries.filter((e) => e.kind === 'trainable');
    const floatBytes = (size: number): number =>
      entries
        .filter((e) => e.kind !== 'alias')
        .reduce((a, e) => a + e.tensor.numel * (e.tensor.dtype.name.startsWith('float') || e.tensor.dtype.name === 'bfloat16' ? size : e.tensor.dtype.size), 0);
    const zero: ZeroSummary = {
      stage,
      worldSize,
      precision,
      tag: files.tag,
      tagFrom: files.tagFrom,
      dsVersion: m0.dsVersion,
      lightning: files.lightning,
      modelFiles: models.map((m) => m.file),
      optimFiles: files.optimFiles,
      paramGroups: m0.paramShapes.map((_, g) => {
        const inGroup = trainable.filter((e) => e.group === g);
        return { params: inGroup.length, numel: inGroup.reduce((a, e) => a + e.tensor.numel, 0) };
      }),
      frozen: entries.filter((e) => e.kind === 'frozen').map((e) => e.name),
      shared: entries.filter((e) => e.kind === 'alias').map((e) => [e.name, e.aliasOf!]),
      buffers: entries.filter((e) => e.kind === 'buffer').map((e) => e.name),
      optimizerState: optims.every((o) => o.optimizerState),
      lossScaler: optims[0]!.lossScaler,
      sizeAs: { fp32: floatBytes(4), bf16: floatBytes(2), fp16: floatBytes(2) },
    };
    const globals: GlobalRef[] = [];
    for (const o of [...optims, ...models]) for (const g of o.reading.globals) globals.push({ ...g, record: `${path.basename(o.file)}:${g.record}` });
    const notes = [
      `DeepSpeed ZeRO-${stage} checkpoint, ${worldSize} ranks, ${precision}, tag ${files.tag}: read as zero_to_fp32 consolidates it (fp32 master weights from the optimizer states)`,
    ];
    if (stage === 1 && m0.frozenShapes === null)
      notes.push('ZeRO 1 saves no frozen_param_shapes: frozen params are not in the consolidated state dict (as zero_to_fp32)');
    if (files.lightning) notes.push('a PyTorch Lightning DeepSpeed checkpoint: its Lightning state is kept, the weights under state_dict');
    const records: Record<string, string> = {
      container: files.lightning ? 'PyTorch Lightning DeepSpeed checkpoint folder' : 'DeepSpeed ZeRO checkpoint folder',
      zero_stage: String(stage),
      world_size: String(worldSize),
      precision,
      tag: files.tag,
      ...(m0.dsVersion ? { ds_version: m0.dsVersion } : {}),
      param_groups: zero.paramGroups.map((g) => `${g.params} params / ${g.numel} elements`).join('; '),
      frozen_params: zero.frozen.length ? zero.frozen.join(', ') : 'none',
      shared_params: zero.shared.length ? zero.shared.map(([a, o]) => `${a} → ${o}`).join(', ') : 'none',
      optimizer_state: zero.optimizerState ? 'present (not consolidated)' : 'absent',
      ...(zero.lossScaler ? { loss_scaler: `${zero.lossScaler.className.split('.').pop()} cur_scale=${zero.lossScaler.curScale ?? '?'}` } : {}),
      size_as_fp32: String(zero.sizeAs.fp32),
      size_as_bf16: String(zero.sizeAs.bf16),
      size_as_fp16: String(zero.sizeAs.fp16),
      model_files: models.map((m) => path.basename(m.file)).join(', '),
      optim_files: files.optimFiles.map((f) => path.basename(f)).join(', '),
    };
    return {
      format: 'deepspeed',
      records,
      root: files.lightning ? lightningRoot(m0, root) : root,
      globals,
      notes,
      close: closeAll,
      zero,
      entries,
      pickleScans: new Map([...optims, ...models].map((o) => [o.file, o.scans])),
    };
  } catch (e) {
    closeAll();
    throw asCheckpointError(e, input);
  }
}

/** Bytes of every file the checkpoint is read from. */
export function deepSpeedBytes(r: DeepSpeedReading): number {
  return [...new Set([...r.zero.modelFiles, ...r.zero.optimFiles])].reduce((a, f) => a + fs.statSync(f).size, 0);
}
