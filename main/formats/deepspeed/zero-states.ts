/**
 * The two kinds of files DeepSpeed's `engine.save_checkpoint` writes, read as typed records
 * (deepspeed/runtime/engine.py `_save_checkpoint`, `_save_zero_checkpoint`; the keys are
 * deepspeed/checkpoint/constants.py). Both are torch.save zip files; their pickles name a few
 * DeepSpeed classes, which the pickle VM keeps as opaque objects and this module interprets
 * without importing anything:
 * - `ZeroStageEnum(3)`: REDUCE of the IntEnum with the stage;
 * - `LossScaler` / `DynamicLossScaler`: NEWOBJ, then BUILD with `{cur_scale, dynamic, …}`;
 * - `fragment_address`: NEWOBJ, then BUILD with `{numel, start}` (ZeRO 1/2 `param_slice_mappings`).
 */
import * as path from 'node:path';
import { fail } from '../../errors.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { asCheckpointError } from '../../errors.ts';
import { FileReader } from '../../io/random-access.ts';
import { openTorchArchive, PrescannedPickles, readTorchZip } from '../torch/torch-zip.ts';
import { PyDict, PyFloat, PyGlobal, PyList, PyObject, PyTuple, shapeItems, type PyValue } from '../values/python-values.ts';
import { TorchTensor } from '../values/torch-values.ts';

export interface ModelStates {
  file: string;
  reading: FormatReading;
  /** the security scan of the file's pickle, made while it was read (for `scanFile`) */
  scans: PrescannedPickles;
  dict: PyDict;
  /** `module`: the model's state dict (ZeRO 3 params are 0-element placeholders) */
  module: PyDict;
  bufferNames: string[];
  /** `param_shapes`: one ordered map per param group, in flat-buffer order */
  paramShapes: Map<string, number[]>[];
  /** `frozen_param_shapes` (ZeRO ≥ 2; null for ZeRO 1 and older DeepSpeed) */
  frozenShapes: Map<string, number[]> | null;
  /** `frozen_param_fragments`: the full tensor (ZeRO 2) or this rank's padded slice (ZeRO 3) */
  frozenFragments: Map<string, TorchTensor> | null;
  /** `shared_params`: alias → owner */
  sharedParams: [string, string][];
  dsVersion: string | null;
  dpWorldSize: number | null;
}

export interface LossScalerInfo {
  className: string;
  curScale: number | null;
  dynamic: boolean | null;
}

export interface OptimStates {
  file: string;
  reading: FormatReading;
  /** the security scan of the file's pickle, made while it was read (for `scanFile`) */
  scans: PrescannedPickles;
  stage: number;
  /** `partition_count`: the max over groups for ZeRO 1/2 (an int for ZeRO 3) */
  worldSize: number;
  /** `single_partition_of_fp32_groups` (ZeRO 1/2) or `fp32_flat_groups` (ZeRO 3): this rank's flat fp32 partition per group */
  flatGroups: TorchTensor[];
  lossScaler: LossScalerInfo | null;
  dynamicLossScale: boolean | null;
  /** the base optimizer's own state (`base_optimizer_state` / `optimizer_state_dict`) is in the file */
  optimizerState: boolean;
}

const base = (f: string): string => path.basename(f);

function sizeOf(v: PyValue | undefined): number[] | null {
  const items = shapeItems(v);
  return items && items.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) ? (items as number[]) : null;
}

function shapesMap(v: PyValue | undefined, what: string, file: string): Map<string, number[]> {
  if (!(v instanceof PyDict)) fail('not-a-checkpoint', `${base(file)}: ${what} is not a dict of shapes`, file);
  const out = new Map<string, number[]>();
  for (const [k, s] of v.entries) {
    const shape = sizeOf(s);
    if (typeof k !== 'string' || !shape) fail('not-a-checkpoint', `${base(file)}: ${what} holds ${String(k)} without a torch.Size`, file);
    out.set(k, shape);
  }
  return out;
}

function strings(v: PyValue | undefined): string[] | null {
  const items =
    v instanceof PyList || v instanceof PyTuple
      ? v.items
      : v instanceof PyObject && v.className.endsWith('.set') && v.args[0] instanceof PyList
        ? v.args[0].items
        : null;
  return items && items.every((x) => typeof x === 'string') ? (items as string[]) : null;
}

/** A DeepSpeed `.pt` file: always torch.save's zip format (deepspeed/runtime/checkpoint_engine uses torch.save). */
function openTorchFile(file: string, scans: PrescannedPickles): FormatReading {
  let reader: FileReader | null = null;
  try {
    reader = new FileReader(file);
    return readTorchZip(openTorchArchive(reader), scans);
  } catch (e) {
    reader?.close();
    throw asCheckpointError(e, file);
  }
}

function openDict(file: string): { reading: FormatReading; dict: PyDict; scans: PrescannedPickles } {
  const scans = new PrescannedPickles();
  const reading = openTorchFile(file, scans);
  if (!(reading.root instanceof PyDict)) {
    reading.close();
    fail('not-a-checkpoint', `${base(file)}: holds a ${typeof reading.root}, not the dict DeepSpeed saves`, file);
  }
  return { reading, dict: reading.root, scans };
}

export function readModelStates(file: string): ModelStates {
  const { reading, dict, scans } = openDict(file);
  try {
    const module = dict.get('module');
    const bufferNames = strings(dict.get('buffer_names'));
    if (!(module instanceof PyDict)) fail('not-a-checkpoint', `${base(file)}: no 'module' state dict; not a DeepSpeed model-states file`, file);
    if (!bufferNames)
      fail('not-a-checkpoint', `${base(file)}: no 'buffer_names' list; not a DeepSpeed model-states file (or one older than zero_to_fp32 reads)`, file);
    const ps = dict.get('param_shapes');
    const groups = ps instanceof PyList ? ps.items : ps instanceof PyDict ? [ps] : null;
    if (!groups) fail('not-a-checkpoint', `${base(file)}: no 'param_shapes' list; the checkpoint was not saved by a ZeRO engine`, file);
    const paramShapes = groups.map((g, i) => shapesMap(g, `param_shapes[${i}]`, file));
    const fs_ = dict.get('frozen_param_shapes');
    const frozenShapes = fs_ === null || fs_ === undefined ? null : shapesMap(fs_, 'frozen_param_shapes', file);
    const ff = dict.get('frozen_param_fragments');
    let frozenFragments: Map<string, TorchTensor> | null = null;
    if (ff instanceof PyDict) {
      frozenFragments = new Map();
      for (const [k, t] of ff.entries) {
        if (typeof k !== 'string' || !(t instanceof TorchTensor) || !t.storage)
          fail('not-a-checkpoint', `${base(file)}: frozen_param_fragments holds ${String(k)} without a tensor`, file);
        frozenFragments.set(k, t);
      }
    }
    const sp = dict.get('shared_params');
    const sharedParams: [string, string][] = [];
    if (sp instanceof PyDict) {
      for (const [k, v] of sp.entries) if (typeof k === 'string' && typeof v === 'string') sharedParams.push([k, v]);
    }
    const dsVersion = dict.get('ds_version');
    const dp = dict.get('dp_world_size');
    return {
      file,
      reading,
      scans,
      dict,
      module,
      bufferNames,
      paramShapes,
      frozenShapes,
      frozenFragments,
      sharedParams,
      dsVersion: typeof dsVersion === 'string' ? dsVersion : null,
      dpWorldSize: typeof dp === 'number' ? dp : null,
    };
  } catch (e) {
    reading.close();
    throw e;
  }
}

const ZERO_STAGE_NAMES: Record<string, number> = { disabled: 0, optimizer_states: 1, gradients: 2, weights: 3 };

/**
 * `ZeroStageEnum(3)` (REDUCE of the IntEnum, Python ≤ 3.11), `getattr(ZeroStageEnum, 'weights')`
 * (Python ≥ 3.12 pickles enum members by name, `Enum.__reduce_ex__`), or a plain int.
 */
function stageOf(v: PyValue | undefined): number | null {
  if (typeof v === 'number') return v;
  if (!(v instanceof PyObject)) return null;
  if (/ZeroStageEnum$/.test(v.className) && typeof v.args[0] === 'number') return v.args[0];
  const [cls, name] = v.args;
  if (/^(__builtin__|builtins)\.getattr$/.test(v.className) && cls instanceof PyGlobal && cls.name === 'ZeroStageEnum' && typeof name === 'string')
    return ZERO_STAGE_NAMES[name] ?? null;
  return null;
}

function lossScaler(v: PyValue | undefined): LossScalerInfo | null {
  if (!(v instanceof PyObject)) return null;
  const st = v.state instanceof PyDict ? v.state : null;
  const cur = st?.get('cur_scale');
  const dyn = st?.get('dynamic');
  const curScale = cur instanceof PyFloat ? cur.value : typeof cur === 'number' ? cur : null;
  return { className: v.className, curScale, dynamic: typeof dyn === 'boolean' ? dyn : null };
}

export function readOptimStates(file: string): OptimStates {
  const { reading, dict, scans } = openDict(file);
  try {
    const osd = dict.get('optimizer_state_dict');
    if (!(osd instanceof PyDict)) fail('not-a-checkpoint', `${base(file)}: no 'optimizer_state_dict'; not a DeepSpeed ZeRO optimizer-states file`, file);
    const stage = stageOf(osd.get('zero_stage'));
    if (stage === null) fail('not-a-checkpoint', `${base(file)}: its optimizer_state_dict has no zero_stage; not a ZeRO checkpoint`, file);
    if (stage < 1 || stage > 3) fail('unsupported', `${base(file)}: ZeRO stage ${stage}; only stages 1, 2 and 3 are consolidated`, file);
    const pc = osd.get('partition_count');
    const counts = pc instanceof PyList ? pc.items : [pc];
    if (!counts.every((c) => typeof c === 'number' && Number.isSafeInteger(c) && c > 0))
      fail('not-a-checkpoint', `${base(file)}: partition_count is missing or not a count`, file);
    const worldSize = Math.max(...(counts as number[]));
    const key = stage <= 2 ? 'single_partition_of_fp32_groups' : 'fp32_flat_groups';
    const fg = osd.get(key);
    if (!(fg instanceof PyList) || !fg.items.every((t) => t instanceof TorchTensor && t.storage && t.shape.length === 1)) {
      fail(
        'not-a-checkpoint',
        `${base(file)}: ZeRO-${stage} optimizer states without ${key} (a list of flat fp32 tensors); the fp32 weights are missing`,
        file,
      );
    }
    const optimizerState = osd.has(stage <= 2 ? 'base_optimizer_state' : 'optimizer_state_dict');
    const dls = osd.get('dynamic_loss_scale');
    return {
      file,
      reading,
      scans,
      stage,
      worldSize,
      flatGroups: fg.items as TorchTensor[],
      lossScaler: lossScaler(osd.get('loss_scaler')),
      dynamicLossScale: typeof dls === 'boolean' ? dls : null,
      optimizerState,
    };
  } catch (e) {
    reading.close();
    throw e;
  }
}
