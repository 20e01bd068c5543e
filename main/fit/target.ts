import * as fs from 'node:fs';
import type { FitTargetInfo, KeyShape } from '../../shared/fit.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';
import { fail } from '../errors.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { loadOnnxModel } from '../formats/onnx/onnx-model.ts';
import { modelState } from './model-state.ts';
import { looksLikeLoadError, parseLoadError } from './parse-load-error.ts';
import { parseShapeLines } from './parse-shape-lines.ts';

/** The model a checkpoint must load into: its state dict keys in order, with shapes where known. */
export interface FitTarget {
  info: FitTargetInfo;
  entries: KeyShape[];
  className: string;
  /** the target's own tensors, when it is a checkpoint (a freshly initialised model) */
  tensors: Map<string, TorchTensor> | null;
  close(): void;
}

/**
 * Reads a target: an ONNX graph (its initializers), a text file (torch's pasted
 * `load_state_dict` error, or `key shape` lines), or a checkpoint of any readable format.
 * A pasted error describes the model only through the checkpoint it was raised for, so the
 * checkpoint's keys are needed to read it: the model has every key the error does not call
 * unexpected, plus the missing ones.
 */
export function readFitTarget(file: string, checkpointKeys: KeyShape[]): FitTarget {
  const given = textOf(file);
  if (given !== null && !/\.onnx$/i.test(file)) return fitTargetFromText(file, given, checkpointKeys);
  return readFitTargetFile(file);
}

/** A target pasted as text: torch's load_state_dict error, or `key shape` lines. */
export function fitTargetFromText(name: string, text: string, checkpointKeys: KeyShape[]): FitTarget {
  if (looksLikeLoadError(text)) return fromLoadError(name, text, checkpointKeys);
  const parsed = parseShapeLines(text);
  if ('badLine' in parsed)
    fail(
      'usage',
      `${name}: line ${parsed.badLine} is neither torch's load_state_dict error nor 'key shape' ('${parsed.line.slice(0, 60)}'); paste the error as torch printed it, or lines like 'conv1.weight torch.Size([8, 3, 3, 3])'`,
      name,
    );
  if (!parsed.entries.length) fail('usage', `${name}: no keys in it; paste torch's load_state_dict error or 'key shape' lines`, name);
  return {
    info: { kind: 'shape-lines', file: name, keys: parsed.entries.length },
    entries: parsed.entries,
    className: 'the model',
    tensors: null,
    close: () => {},
  };
}

function readFitTargetFile(file: string): FitTarget {
  if (/\.onnx$/i.test(file)) {
    const m = loadOnnxModel(file);
    const entries = m.initializers.map((t) => ({ key: t.name, shape: t.dims }));
    return { info: { kind: 'onnx', file, keys: entries.length }, entries, className: 'the ONNX model', tensors: null, close: () => {} };
  }
  const ck: Checkpoint = openCheckpoint(file, { shardedRanks: 'consolidate' });
  try {
    const state = modelState(ck);
    return {
      info: { kind: 'checkpoint', file, keys: state.entries.length },
      entries: state.entries,
      className: 'the model',
      tensors: state.tensors,
      close: () => ck.close(),
    };
  } catch (e) {
    ck.close();
    throw e;
  }
}

/** The file's text when it is a small UTF-8 text file without NUL bytes, else null. */
function textOf(file: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    fail('io', `${file}: no such file`, file);
  }
  if (!st.isFile() || st.size > 64 << 20) return null;
  const bytes = fs.readFileSync(file);
  if (bytes.includes(0)) return null;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return text.includes('\uFFFD') ? null : text;
}

function fromLoadError(file: string, text: string, checkpointKeys: KeyShape[]): FitTarget {
  const err = parseLoadError(text);
  if (!err.missing.length && !err.unexpected.length && !err.mismatched.length)
    fail('usage', `${file}: torch's error names no missing, unexpected or size-mismatched key; paste all of its lines`, file);
  const unexpected = new Set(err.unexpected);
  const have = new Set(checkpointKeys.map((e) => e.key));
  const foreign = err.unexpected.find((k) => !have.has(k)) ?? err.mismatched.find((m) => !have.has(m.key))?.key;
  if (foreign !== undefined)
    fail('usage', `${file}: the error names '${foreign}', which this checkpoint does not have; was it raised for another checkpoint?`, file);
  const modelShape = new Map(err.mismatched.map((m) => [m.key, m.modelShape]));
  const entries: KeyShape[] = [];
  for (const e of checkpointKeys) if (!unexpected.has(e.key)) entries.push({ key: e.key, shape: modelShape.get(e.key) ?? e.shape });
  for (const k of err.missing) entries.push({ key: k, shape: null });
  // A BatchNorm whose `_metadata` version is missing gets `num_batches_tracked` filled in by
  // `_NormBase._load_from_state_dict` (torch/nn/modules/batchnorm.py), so torch never calls it
  // missing; the model has it all the same.
  const listed = new Set(entries.map((e) => e.key));
  for (const k of err.missing) {
    if (!k.endsWith('.running_mean')) continue;
    const counter = `${k.slice(0, -'running_mean'.length)}num_batches_tracked`;
    if (!listed.has(counter)) {
      entries.push({ key: counter, shape: [] });
      listed.add(counter);
    }
  }
  return {
    info: { kind: 'load-error', file, keys: entries.length, ...(err.className ? { className: err.className } : {}) },
    entries,
    className: err.className ?? 'the model',
    tensors: null,
    close: () => {},
  };
}
