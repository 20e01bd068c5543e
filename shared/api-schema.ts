/**
 * The arguments of every API method as schemas: what a transport (HTTP, IPC) checks once before a
 * call reaches the service, and, through the types derived from the same schemas
 * (`ConversionRules`, `VerifyOptions`, `ReshardRequest`, …), what the contract declares. A wrong
 * argument is one line naming it: `rules.preset.worldSize must be a whole number from 1 to 4096, not 0`.
 */
import * as v from 'valibot';
import { API_METHODS, type ApiMethod, type CheckpointApi, MAX_UPLOAD_BYTES } from './api.ts';
import { absolutePath, bool, checkValue, type Checked, list, notAList, oneOf, shaped, show, text, wholeNumber } from './checks.ts';
import { FitEditSchema, FitTargetInputSchema } from './fit.ts';
import { ConversionRulesSchema, RenameListSchema } from './presets.ts';
import { ReshardRequestSchema } from './reshard.ts';
import { type VerifyReport, VerifyOptionsSchema } from './verify.ts';

const anyString = v.string((i) => `must be a string, not ${show(i.input)}`);
const anyNumber = v.custom<number>(
  (x) => typeof x === 'number',
  (i) => `must be a number, not ${show(i.input)}`,
);
const count = wholeNumber(0, Number.MAX_SAFE_INTEGER);
const listOf = <T extends v.GenericSchema>(item: T) => v.array(item, (i) => `must be a list, not ${show(i.input)}`);
const recordOf = <T extends v.GenericSchema>(item: T) => v.record(v.string(), item, (i) => `must be an object, not ${show(i.input)}`);
const dims = listOf(v.custom<number | string>((x) => typeof x === 'number' || typeof x === 'string', 'must be a size or a name'));
const sha = v.custom<string>((x) => typeof x === 'string' && /^[0-9a-f]{0,64}$/.test(x), 'must be a sha256 in hex');

/**
 * A `VerifyReport` as a verification returned it (to render as HTML): every field the page shows
 * has its type, numbers are numbers, so nothing unescaped reaches the page. Other fields are let
 * through (newer reports). `VerifyReport` must fit it: the compiler checks that below.
 */
const VERIFY_REPORT = shaped({
  version: v.literal(1, 'must be 1 (a report of this version of ckpt verify)'),
  createdAt: anyString,
  options: shaped({ checkpoint: anyString, against: v.optional(v.nullable(anyString)) }),
  model: shaped({
    file: anyString,
    producer: anyString,
    opset: v.nullable(anyNumber),
    initializers: count,
    externalData: listOf(anyString),
    input: shaped({ name: anyString, shape: dims }),
    output: shaped({ name: anyString, shape: dims }),
  }),
  data: shaped({
    path: anyString,
    format: anyString,
    samples: count,
    classes: count,
    classNames: v.nullable(listOf(anyString)),
    notes: listOf(anyString),
    preprocess: shaped({
      layout: anyString,
      channels: count,
      height: count,
      width: count,
      resize: anyString,
      scale: v.nullable(anyNumber),
      mean: listOf(anyNumber),
      std: listOf(anyNumber),
    }),
  }),
  provider: shaped({
    requested: anyString,
    used: oneOf(['cpu', 'cuda']),
    deviceId: v.nullable(count),
    fallback: v.nullable(anyString),
    onnxruntime: anyString,
  }),
  batchSize: count,
  binding: shaped({
    initializers: listOf(
      shaped({ name: anyString, dtype: anyString, shape: listOf(anyNumber), kind: oneOf(['bound', 'recomputed', 'unconfirmed', 'constant']), used: bool }),
    ),
    counts: shaped({ bound: count, recomputed: count, unconfirmed: count, constants: count }),
    unusedTensors: recordOf(listOf(anyString)),
    missingTensors: recordOf(listOf(anyString)),
    coverage: anyNumber,
  }),
  runs: v.pipe(
    listOf(
      shaped({
        label: anyString,
        file: v.nullable(anyString),
        recorded: listOf(shaped({ path: anyString, value: anyNumber, fraction: v.nullable(anyNumber) })),
        inferenceSeconds: anyNumber,
        imagesPerSecond: anyNumber,
        metrics: shaped({
          samples: count,
          correct: count,
          top1: anyNumber,
          top5: v.nullable(anyNumber),
          logitsSha256: sha,
          predictions: listOf(count),
          perClass: listOf(shaped({ samples: count, correct: count, accuracy: v.nullable(anyNumber) })),
          confusion: listOf(listOf(count)),
        }),
      }),
    ),
    v.maxLength(16, 'has more than 16 entries'),
  ),
  comparison: shaped({
    candidate: anyString,
    reference: anyString,
    accuracyDelta: anyNumber,
    identicalPredictions: anyNumber,
    differingSamples: listOf(count),
    bitIdentical: bool,
    maxAbsLogitDiff: anyNumber,
    maxRelDiff: anyNumber,
    outsideTolerance: count,
    atol: anyNumber,
    rtol: anyNumber,
    diffHistogram: shaped({ zero: count, decades: listOf(shaped({ from: anyNumber, count })) }),
  }),
  verdict: oneOf(['PASS', 'WARN', 'FAIL']),
  reasons: listOf(anyString),
  provesNothing: bool,
  seconds: anyNumber,
});

export const VerifyReportSchema = v.pipe(notAList, VERIFY_REPORT);

/** A report the engine writes passes the check: a field of `VerifyReport` the schema restates differently fails to compile here. */
export type ReportFitsSchema = VerifyReport extends v.InferInput<typeof VERIFY_REPORT> ? true : never;
const reportFitsSchema: ReportFitsSchema = true;

const jobId = v.custom<string>(
  (x) => typeof x === 'string' && /^job-\d{1,9}$/.test(x),
  (i) => `must be a job id like 'job-3', not ${show(i.input)}`,
);
const tensorPath = list(
  v.custom<string | number>(
    (k) => (typeof k === 'string' && checkValue(text, k, '').ok) || (typeof k === 'number' && Number.isInteger(k) && k >= 0),
    (i) => {
      const r = typeof i.input === 'string' ? checkValue(text, i.input, '') : null;
      return r && !r.ok ? r.message.trimStart() : `must be a key or an index, not ${show(i.input)}`;
    },
  ),
);
const deviceCounts = v.pipe(
  v.custom<unknown>((x) => !Array.isArray(x), 'must be an object of device tag → tensor count, not a list'),
  v.record(
    v.pipe(
      v.string(),
      v.regex(/^[a-z][a-z0-9_]*(:\d{1,6})?$/, (i) => `: '${String(i.input).slice(0, 60)}' is not a device tag`),
    ),
    wholeNumber(0, Number.MAX_SAFE_INTEGER),
    (i) => `must be an object of device tag → tensor count, not ${show(i.input)}`,
  ),
  v.check((o) => Object.keys(o).length <= 256, 'has more than 256 device tags'),
);

/** one path component: what a browser gives as a dropped file's name */
const fileName = v.pipe(
  text,
  v.check(
    (s) => s.length > 0 && s.length <= 255 && !/[\\/]/.test(s) && s !== '.' && s !== '..',
    (i) => `must be a file name without folders, not ${show(i.input)}`,
  ),
);
const base64Upload = v.custom<string>(
  (x) => typeof x === 'string' && x.length <= Math.ceil(MAX_UPLOAD_BYTES / 3) * 4 && /^[A-Za-z0-9+/]*={0,2}$/.test(x),
  `must be base64 of at most ${MAX_UPLOAD_BYTES >> 20} MiB`,
);
const fitEdits = list(FitEditSchema);

interface Arg<S extends v.GenericSchema = v.GenericSchema> {
  name: string;
  schema: S;
  /** may be left out, or given as null or undefined (JSON turns undefined into null) */
  optional?: true;
}
const arg = <S extends v.GenericSchema>(name: string, schema: S): Arg<S> => ({ name, schema });
const optionalArg = <S extends v.GenericSchema>(name: string, schema: S): Arg<S> & { optional: true } => ({ name, schema, optional: true });

/** Each method's arguments, in order. */
export const API_ARGUMENTS = {
  getWorkspace: [],
  listDirectory: [arg('dir', absolutePath)],
  findDroppedFile: [arg('name', fileName), arg('bytes', count), arg('modifiedMs', count), arg('folders', list(absolutePath))],
  uploadDroppedFile: [arg('name', fileName), arg('base64', base64Upload)],
  chooseFile: [arg('kind', oneOf(['file', 'folder', 'save'])), optionalArg('suggested', text)],
  addRecent: [arg('file', absolutePath)],
  inspect: [arg('file', absolutePath)],
  tensorStats: [arg('file', absolutePath), arg('path', tensorPath), arg('bins', wholeNumber(1, 1024))],
  previewConversion: [arg('file', absolutePath), arg('rules', ConversionRulesSchema), arg('output', v.nullable(absolutePath))],
  startConversion: [arg('file', absolutePath), arg('rules', ConversionRulesSchema), arg('output', v.nullable(absolutePath)), arg('force', bool)],
  planBatch: [arg('folder', absolutePath), arg('outDir', absolutePath), arg('rules', ConversionRulesSchema)],
  startBatch: [
    arg('folder', absolutePath),
    arg('outDir', absolutePath),
    arg('rules', ConversionRulesSchema),
    arg('force', bool),
    arg('jobs', wholeNumber(1, 64)),
  ],
  cancelJob: [arg('job', jobId)],
  jobStatus: [arg('job', jobId)],
  startVerify: [arg('options', VerifyOptionsSchema)],
  verifyReportHtml: [arg('report', VerifyReportSchema)],
  planReshard: [arg('request', ReshardRequestSchema)],
  startReshard: [arg('request', ReshardRequestSchema)],
  readDevices: [],
  devicePlan: [arg('deviceCounts', deviceCounts), optionalArg('ddpWorldSize', wholeNumber(1, 4096))],
  watchDevices: [arg('on', bool)],
  fitCheckpoint: [arg('file', absolutePath), arg('target', FitTargetInputSchema), arg('renames', RenameListSchema), optionalArg('edits', fitEdits)],
  startFitConversion: [arg('file', absolutePath), arg('target', FitTargetInputSchema), arg('edits', fitEdits), arg('output', absolutePath), arg('force', bool)],
  diffCheckpoints: [arg('a', absolutePath), arg('b', absolutePath), arg('exactKeys', bool)],
  diffHistograms: [arg('a', absolutePath), arg('b', absolutePath), arg('key', text), arg('exactKeys', bool), arg('bins', wholeNumber(1, 1024))],
} as const satisfies { [M in ApiMethod]: readonly Arg[] };

/** The outputs of a list of arguments' schemas (an optional one may be left out). */
type ArgsOutput<T> = { -readonly [I in keyof T]: T[I] extends Arg<infer S> ? v.InferOutput<S> : never };
/** What the checked arguments of a method are. */
type CheckedArgs<M extends ApiMethod> = ArgsOutput<(typeof API_ARGUMENTS)[M]>;

/**
 * The contract's methods take what the checks give them: a method whose parameters differ from
 * its schemas fails to compile here. The report is checked for the fields the page shows only
 * (`ReportFitsSchema` ties those to `VerifyReport`).
 */
export type ContractFitsSchemas = {
  [M in ApiMethod]: M extends 'verifyReportHtml' ? true : CheckedArgs<M> extends Parameters<CheckpointApi[M]> ? true : M;
};
const contractFitsSchemas: { [M in ApiMethod]: true } = {} as ContractFitsSchemas;
void [reportFitsSchema, contractFitsSchemas];

export const isApiMethod = (m: unknown): m is ApiMethod => typeof m === 'string' && (API_METHODS as readonly string[]).includes(m);

/**
 * The checked (and normalised) arguments of a call, or the one line saying which is wrong.
 * Optional trailing arguments may be left out, or given as null or undefined.
 */
export function checkArguments<M extends ApiMethod>(method: M, given: unknown): Checked<CheckedArgs<M>> {
  if (!Array.isArray(given)) return { ok: false, message: `${method} takes a list of arguments, not ${show(given)}` };
  const spec: readonly Arg[] = API_ARGUMENTS[method];
  const required = spec.filter((a) => !a.optional).length;
  if (given.length < required || given.length > spec.length) {
    const n = required === spec.length ? `${spec.length}` : `${required} to ${spec.length}`;
    return {
      ok: false,
      message: `${method} takes ${n} argument${spec.length === 1 ? '' : 's'} (${spec.map((a) => a.name).join(', ') || 'none'}), not ${given.length}`,
    };
  }
  const out: unknown[] = [];
  for (const [i, a] of spec.entries()) {
    const x: unknown = given[i];
    if (a.optional && (x === undefined || x === null)) continue;
    const r = checkValue(a.schema, x, a.name);
    if (!r.ok) return r;
    out[i] = r.value;
  }
  return { ok: true, value: out as CheckedArgs<M> };
}
