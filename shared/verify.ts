/**
 * Verifying a checkpoint by test-set inference (`ckpt verify`, the Verify view): an ONNX graph
 * exported from the user's model runs with its weights replaced by the checkpoint's tensors, on a
 * test set, and the predictions are scored and compared. Plain serialisable data: no classes, no
 * Node types, so it crosses the worker and IPC boundaries as is.
 */
import * as v from 'valibot';
import {
  absolutePath,
  bool,
  checkValue,
  fields,
  finite,
  isRecord,
  MAX_TEXT,
  nonZero,
  numbers,
  oneOf,
  show,
  text,
  wholeNumber,
  withoutUndefined,
} from './checks.ts';

export const TEST_SET_FORMATS = ['npz', 'idx', 'cifar', 'imagefolder'] as const;
export type TestSetFormat = (typeof TEST_SET_FORMATS)[number];
export const RESIZE_MODES = ['bilinear', 'area', 'nearest'] as const;
export type ResizeMode = (typeof RESIZE_MODES)[number];
const TENSOR_LAYOUTS = ['NCHW', 'NHWC'] as const;
export type TensorLayout = (typeof TENSOR_LAYOUTS)[number];
export type Verdict = 'PASS' | 'WARN' | 'FAIL';

/** How raw test images become the graph's input; every field is optional in VerifyOptions. */
const PREPROCESS_FIELDS = {
  layout: oneOf(TENSOR_LAYOUTS),
  channels: wholeNumber(1, 4096),
  height: wholeNumber(1, 1 << 16),
  width: wholeNumber(1, 1 << 16),
  resize: oneOf(RESIZE_MODES),
  /** raw values are multiplied by this before mean/std; null: 1/255 for 8-bit images, 1 for float data */
  scale: v.nullable(nonZero),
  /** per channel; one value applies to every channel */
  mean: numbers(finite(-Infinity)),
  std: numbers(nonZero),
};
export const PreprocessSchema = fields(PREPROCESS_FIELDS);
export type Preprocess = v.InferOutput<typeof PreprocessSchema>;

/** A verification as the API takes it: the three files as absolute paths, every other field optional. */
export const VerifyOptionsSchema = v.pipe(
  fields(
    {
      /** the ONNX graph (`.onnx`; external data beside it is found through the graph); empty with `modelClass` */
      model: text,
      /** the test set: a `.npz` with x and y, an MNIST-style idx folder or file, a CIFAR python batch or folder, an ImageFolder tree */
      data: absolutePath,
      /** the checkpoint to verify */
      checkpoint: absolutePath,
      /** the checkpoint it should agree with (usually the source of a conversion); without it, the graph's own weights are the reference */
      against: v.optional(v.nullable(absolutePath)),
      /** `auto` (CUDA device 0 when onnxruntime's CUDA provider loads, else CPU), `cpu`, or `cuda:N`. Default `auto`. */
      device: v.optional(
        v.pipe(
          text,
          v.regex(/^(auto|cpu|(cuda|gpu)(:\d{1,4})?)$/i, (i) => `must be auto, cpu, cuda or cuda:N, not ${show(i.input)}`),
        ),
      ),
      /** samples per inference call (default 64; a graph with a fixed batch size uses that) */
      batchSize: v.optional(wholeNumber(1, 1 << 16)),
      /** only the first N samples of the test set */
      limit: v.optional(v.nullable(wholeNumber(1, 2 ** 31 - 1))),
      /** force the test-set reader instead of detecting it */
      dataFormat: v.optional(v.nullable(oneOf(TEST_SET_FORMATS))),
      /** overrides of the preprocessing read from the graph's input */
      preprocess: v.optional(v.pipe(fields(v.partial(v.strictObject(PREPROCESS_FIELDS)).entries), v.transform(withoutUndefined))),
      /** logits count as close when |a - b| <= atol + rtol * |b| (defaults 1e-4, 1e-4) */
      atol: v.optional(finite(0)),
      rtol: v.optional(finite(0)),
      /** also use name bindings whose values the graph could not confirm (reported as such) */
      trustNames: v.optional(bool),
      /** BatchNorm epsilon for recomputing folded Conv+BN weights when the checkpoint does not say (default 1e-5, torch's) */
      bnEps: v.optional(finite(0, Infinity, true)),
      /**
       * The architecture from the user's own Python instead of a graph (`model` is then unused):
       * `path/to/file.py:ClassName` or `package.module:ClassName`, importable by `python`.
       */
      modelClass: v.optional(v.nullable(v.pipe(text, v.regex(/^[^\n]+$/, 'must be file.py:ClassName or package.module:ClassName')))),
      /** keyword arguments for the class's constructor */
      modelArgs: v.optional(
        v.nullable(v.custom<Record<string, unknown>>((x) => isRecord(x) && JSON.stringify(x).length <= MAX_TEXT, 'must be an object of keyword arguments')),
      ),
      /** the interpreter; absent: the first python on PATH that imports torch */
      python: v.optional(v.nullable(absolutePath)),
    },
    null,
  ),
  // with a Python model class there is no graph: `model` stays empty; otherwise it is an absolute path
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const o = withoutUndefined(dataset.value);
    if (o.modelClass && o.model === '') return o;
    const model = checkValue(absolutePath, o.model, '');
    if (model.ok) return { ...o, model: model.value };
    addIssue({ message: model.message.trimStart(), path: [{ type: 'object', origin: 'value', input: o, key: 'model', value: o.model }] });
    return NEVER;
  }),
);
export type VerifyOptions = v.InferOutput<typeof VerifyOptionsSchema>;

/** How a Python-model verification ran (`ckpt verify --model-class`). */
export interface PythonRunReport {
  /** the runner protocol version */
  protocol: number;
  interpreter: string;
  /** `--python`, or where it was found: `PATH`, `VIRTUAL_ENV`, `CONDA_PREFIX` */
  chosenBy: string;
  pythonVersion: string;
  torch: string;
  device: string;
  deviceName: string;
  modelClass: string;
  modelArgs: Record<string, unknown>;
  /** per run: the keys leading to the model's state dict and the wrapper prefixes removed, as convert does */
  applied: { label: string; file: string; path: (string | number)[]; stripped: string[]; keys: number }[];
  /** spawning the interpreter and importing torch */
  startupSeconds: number;
  /** importing the class, constructing it and loading the checkpoints (the first chunk of samples is read and preprocessed meanwhile) */
  loadSeconds: number;
  /**
   * the batch loop's wall time, from both models loaded (by the runner's clock) to the last logits
   * scored: every model's forward, the scoring, and reading, preprocessing and sending the chunks
   * after the first (the first is sent behind the last load request, and waits in the runner as the
   * test set of a plain torch loop is in memory before its clock starts), the logits' transfers
   */
  loopSeconds: number;
}

/** How one graph initializer got its value. */
export type BindingKind =
  | 'bound' // copied from a checkpoint tensor, value confirmed against the graph
  | 'recomputed' // computed from checkpoint tensors (a BatchNorm folded into the Conv or Linear before it), value confirmed
  | 'unconfirmed' // a checkpoint tensor fits by name and shape but its value did not match the graph's
  | 'constant'; // kept as exported: nothing in the checkpoint is known to produce it

export interface InitializerBinding {
  name: string;
  dtype: string;
  shape: number[];
  kind: BindingKind;
  /** checkpoint keys (wrapper prefixes removed) it comes from */
  from?: string[];
  /** how it is made: `value`, `transposed`, `scaled ×k`, `conv+bn fold`, `linear+bn fold` (confirmed by value); `name`, `dynamo name` (unconfirmed) */
  via?: string;
  /** run labels whose values matched the graph's within float32 rounding */
  confirmedBy?: string[];
  /** largest |checkpoint - graph| per run label */
  maxAbsDiff?: Record<string, number>;
  /** true when the checkpoint's values are used in the runs */
  used: boolean;
  note?: string;
}

export interface BindingReport {
  initializers: InitializerBinding[];
  counts: { bound: number; recomputed: number; unconfirmed: number; constants: number };
  /** per run label: checkpoint tensors the graph never used */
  unusedTensors: Record<string, string[]>;
  /** per run label: the checkpoint tensors that reached no graph weight, each with the reason */
  unreached?: Record<string, UnreachedTensor[]>;
  /** per run label: share of the checkpoint's parameters and buffers (float tensors but BatchNorm's counters, by elements) that reached the graph */
  parameterCoverage?: Record<string, number>;
  /** per run label: checkpoint keys a binding needs that this checkpoint lacks */
  missingTensors: Record<string, string[]>;
  /** share of the graph's initializer elements that came from the checkpoint (0..1) */
  coverage: number;
  /** BatchNorm epsilons used for recomputation, by module */
  bnEps: Record<string, number>;
}

export interface UnreachedTensor {
  key: string;
  reason: string;
}

export interface RecordedMetric {
  /** where it was found, e.g. `best_acc` or `meta/acc1` */
  path: string;
  value: number;
  /** the value as a fraction in [0, 1] (percentages divided by 100), or null when it does not look like an accuracy */
  fraction: number | null;
}

export interface RunMetrics {
  samples: number;
  correct: number;
  top1: number;
  /** null when there are fewer than 5 classes */
  top5: number | null;
  /** index = class */
  perClass: { samples: number; correct: number; accuracy: number | null }[];
  /** confusion[true][predicted] */
  confusion: number[][];
  /** predicted class per sample, in test-set order */
  predictions: number[];
  /** sha256 of all logits as little-endian float32, in sample order */
  logitsSha256: string;
}

export interface RunResult {
  /** `checkpoint`, `against`, or `graph` (the graph's own weights) */
  label: string;
  file: string | null;
  metrics: RunMetrics;
  /** accuracies the checkpoint recorded about itself (best_acc, acc1, ...) */
  recorded: RecordedMetric[];
  /** seconds in onnxruntime `run` calls, and the resulting throughput */
  inferenceSeconds: number;
  imagesPerSecond: number;
}

export interface Comparison {
  /** run labels: the one verified and its reference */
  candidate: string;
  reference: string;
  /** candidate top-1 minus reference top-1 */
  accuracyDelta: number;
  /** share of samples with the same predicted class */
  identicalPredictions: number;
  /** samples whose predicted class differs (first 100) */
  differingSamples: number[];
  bitIdentical: boolean;
  maxAbsLogitDiff: number;
  /** max |a - b| / max(|a|, |b|) over logits that are not both zero */
  maxRelDiff: number;
  /** logits outside atol + rtol * |reference| */
  outsideTolerance: number;
  atol: number;
  rtol: number;
  /** per-sample max |Δlogit|: counts per decade [1e-12, 1e-11), ..., [1e2, ∞); `zero` counts exact matches */
  diffHistogram: { zero: number; decades: { from: number; count: number }[] };
}

export interface ProviderReport {
  requested: string;
  /** the execution provider that ran: `cpu` or `cuda` */
  used: 'cpu' | 'cuda';
  deviceId: number | null;
  /** why CUDA was not used, when it was asked for */
  fallback: string | null;
  onnxruntime: string;
}

/** A test image as 8-bit pixels, scaled down to at most 64 on a side, for showing it. */
export interface SampleImage {
  width: number;
  height: number;
  /** 1 (grey) or 3 (RGB) */
  channels: 1 | 3;
  /** base64 of height × width × channels bytes, row by row, channels last */
  pixels: string;
}

/** A sample worth looking at, with its image. */
export interface SampleExample {
  /** index in the test set */
  index: number;
  label: number;
  /** the class each run predicted, by run label */
  predicted: Record<string, number>;
  /** `changed`: the runs disagree on it; `wrong`: they agree, on a wrong class */
  why: 'changed' | 'wrong';
  image: SampleImage;
}

export interface VerifyReport {
  version: 1;
  createdAt: string;
  options: VerifyOptions;
  model: {
    file: string;
    producer: string;
    opset: number | null;
    input: { name: string; shape: (number | string)[] };
    output: { name: string; shape: (number | string)[] };
    initializers: number;
    /** external data files the graph names, relative to it */
    externalData: string[];
  };
  data: { path: string; format: TestSetFormat; samples: number; classes: number; classNames: string[] | null; preprocess: Preprocess; notes: string[] };
  provider: ProviderReport;
  batchSize: number;
  binding: BindingReport;
  runs: RunResult[];
  comparison: Comparison;
  verdict: Verdict;
  /** why the verdict is what it is, one line each */
  reasons: string[];
  /** true when no checkpoint tensor reached the graph: the runs only measured the exported weights */
  provesNothing: boolean;
  seconds: number;
  /**
   * The first samples whose prediction changed between the runs (up to 16), then the first that
   * both runs got wrong (up to 8), with their pixels. Absent from reports made before it existed.
   */
  examples?: SampleExample[];
  /** present when the architecture came from the user's Python (the `model` and `provider` fields then describe the class and torch) */
  python?: PythonRunReport;
}
