/**
 * The boundary check of every API call: argument count and types per method, absolute paths,
 * rules shaped like `ConversionRules`, numbers in range. Both transports (HTTP, IPC) and the
 * service itself run it; a wrong argument is a `usage` error with one line saying which.
 */
import * as path from 'node:path';
import { API_METHODS, MAX_UPLOAD_BYTES, type ApiMethod } from '../../shared/api.ts';
import { parseMapLocation, regexError, type CastDtype, type ConversionRules, type Preset } from '../../shared/presets.ts';
import type { ReshardRequest, ReshardTarget } from '../../shared/reshard.ts';
import type { Preprocess, VerifyOptions, VerifyReport } from '../../shared/verify.ts';
import { fail } from '../errors.ts';

type Check = (v: unknown, name: string) => unknown;
interface Arg {
  name: string;
  check: Check;
  optional?: boolean;
}

const MAX_TEXT = 4096;
const MAX_LIST = 256;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string =>
  v === undefined ? 'nothing' : Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v === 'string' ? `'${v.slice(0, 60)}'` : typeof v;

function text(v: unknown, name: string): string {
  if (typeof v !== 'string') fail('usage', `${name} must be a string, not ${show(v)}`);
  if (v.length > MAX_TEXT) fail('usage', `${name} is longer than ${MAX_TEXT} characters`);
  if (v.includes('\0')) fail('usage', `${name} contains a NUL character`);
  return v;
}

export function absolutePath(v: unknown, name: string): string {
  const p = text(v, name);
  if (!path.isAbsolute(p)) fail('usage', `${name} must be an absolute path, not ${show(p)}`);
  return path.normalize(p);
}

const nullable =
  (check: Check): Check =>
  (v, name) =>
    v === null ? null : check(v, name);
const bool: Check = (v, name) => (typeof v === 'boolean' ? v : fail('usage', `${name} must be true or false, not ${show(v)}`));

const int =
  (lo: number, hi: number): Check =>
  (v, name) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) fail('usage', `${name} must be a whole number from ${lo} to ${hi}, not ${show(v)}`);
    return v;
  };

const oneOf =
  <T extends string>(values: readonly T[]): Check =>
  (v, name) => {
    if (typeof v !== 'string' || !values.includes(v as T)) fail('usage', `${name} must be one of ${values.join(', ')}, not ${show(v)}`);
    return v;
  };

function list(v: unknown, name: string): unknown[] {
  if (!Array.isArray(v)) fail('usage', `${name} must be a list, not ${show(v)}`);
  if (v.length > MAX_LIST) fail('usage', `${name} has more than ${MAX_LIST} entries`);
  return v;
}

function fields(v: unknown, name: string, allowed: readonly string[]): Record<string, unknown> {
  if (!isRecord(v)) fail('usage', `${name} must be an object, not ${show(v)}`);
  const extra = Object.keys(v).find((k) => !allowed.includes(k));
  if (extra !== undefined) fail('usage', `${name} has an unknown field '${extra.slice(0, 60)}'`);
  return v;
}

const regex: Check = (v, name) => {
  const s = text(v, name);
  const err = regexError(s);
  return err ? fail('usage', `${name}: ${err}`) : s;
};

function preset(v: unknown, name: string): Preset {
  const p = fields(v, name, ['name', 'index', 'worldSize']);
  switch (p['name']) {
    case 'cpu':
    case 'dp':
      fields(p, name, ['name']);
      return { name: p['name'] };
    case 'gpu':
      fields(p, name, ['name', 'index']);
      return { name: 'gpu', index: int(0, 1023)(p['index'], `${name}.index`) as number };
    case 'ddp':
      fields(p, name, ['name', 'worldSize']);
      return { name: 'ddp', worldSize: int(1, 4096)(p['worldSize'], `${name}.worldSize`) as number };
    default:
      return fail('usage', `${name}.name must be cpu, gpu, dp or ddp, not ${show(p['name'])}`);
  }
}

const RULE_FIELDS = ['preset', 'stripPrefixes', 'addPrefix', 'renames', 'include', 'exclude', 'mapLocation', 'unwrap', 'exportStateDict'] as const;

/** `[{pattern, replacement}]`: regex renames, as the rules and fit take them. */
function renameList(v: unknown, name: string): { pattern: string; replacement: string }[] {
  return list(v, name).map((x, i) => {
    const n = `${name}[${i}]`;
    const o = fields(x, n, ['pattern', 'replacement']);
    return { pattern: regex(o['pattern'], `${n}.pattern`) as string, replacement: text(o['replacement'], `${n}.replacement`) };
  });
}

/** `--dtype` fields, optional in rules and re-shard requests. */
const CAST_FIELDS = ['castTo', 'keepDtype'] as const;
function castFields(r: Record<string, unknown>, name: string): { castTo?: CastDtype | null; keepDtype?: string | null } {
  return {
    ...('castTo' in r ? { castTo: nullable(oneOf(['float32', 'bfloat16', 'float16']))(r['castTo'], `${name}.castTo`) as CastDtype | null } : {}),
    ...('keepDtype' in r ? { keepDtype: nullable(regex)(r['keepDtype'], `${name}.keepDtype`) as string | null } : {}),
  };
}

export function conversionRules(v: unknown, name = 'rules'): ConversionRules {
  const r = fields(v, name, [...RULE_FIELDS, 'keepObjects', ...CAST_FIELDS]);
  const missing = RULE_FIELDS.find((k) => !(k in r));
  if (missing) fail('usage', `${name}.${missing} is missing`);
  return {
    preset: r['preset'] === null ? null : preset(r['preset'], `${name}.preset`),
    stripPrefixes: list(r['stripPrefixes'], `${name}.stripPrefixes`).map((s, i) => text(s, `${name}.stripPrefixes[${i}]`)),
    addPrefix: nullable(text)(r['addPrefix'], `${name}.addPrefix`) as string | null,
    renames: renameList(r['renames'], `${name}.renames`),
    include: nullable(regex)(r['include'], `${name}.include`) as string | null,
    exclude: nullable(regex)(r['exclude'], `${name}.exclude`) as string | null,
    mapLocation: list(r['mapLocation'], `${name}.mapLocation`).map((x, i) => {
      const n = `${name}.mapLocation[${i}]`;
      const o = fields(x, n, ['from', 'to']);
      const m = parseMapLocation(`${text(o['from'], `${n}.from`)}=${text(o['to'], `${n}.to`)}`);
      return typeof m === 'string' ? fail('usage', `${n}: ${m.replace(/^--map-location: /, '')}`) : m;
    }),
    unwrap: bool(r['unwrap'], `${name}.unwrap`) as boolean,
    exportStateDict: bool(r['exportStateDict'], `${name}.exportStateDict`) as boolean,
    // optional: carry classes torch.load(weights_only=True) refuses (`ckpt convert --keep-objects`)
    ...('keepObjects' in r && bool(r['keepObjects'], `${name}.keepObjects`) ? { keepObjects: true } : {}),
    ...castFields(r, name),
  };
}

const tensorPath: Check = (v, name) =>
  list(v, name).map((k, i) => {
    if (typeof k === 'string') return text(k, `${name}[${i}]`);
    if (typeof k === 'number' && Number.isInteger(k) && k >= 0) return k;
    return fail('usage', `${name}[${i}] must be a key or an index, not ${show(k)}`);
  });

const deviceCounts: Check = (v, name) => {
  if (!isRecord(v)) fail('usage', `${name} must be an object of device tag → tensor count, not ${show(v)}`);
  const o = v;
  const keys = Object.keys(o);
  if (keys.length > MAX_LIST) fail('usage', `${name} has more than ${MAX_LIST} device tags`);
  for (const k of keys) {
    if (!/^[a-z][a-z0-9_]*(:\d{1,6})?$/.test(k)) fail('usage', `${name}: '${k.slice(0, 60)}' is not a device tag`);
    int(0, Number.MAX_SAFE_INTEGER)(o[k], `${name}['${k}']`);
  }
  return { ...o };
};

const finite =
  (lo: number, hi = Infinity, openLo = false): Check =>
  (v, name) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || (openLo && v === lo) || v > hi) {
      const range = lo === -Infinity ? '' : openLo ? ` above ${lo}` : hi < Infinity ? ` from ${lo} to ${hi}` : ` of ${lo} or more`;
      fail('usage', `${name} must be a number${range}, not ${typeof v === 'number' ? v : show(v)}`);
    }
    return v;
  };

/** Copies the fields of `o` that `checks` names and are set (undefined counts as not set). */
function optionalFields<T>(o: Record<string, unknown>, name: string, checks: Record<string, Check>): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [k, check] of Object.entries(checks)) if (o[k] !== undefined) out[k] = check(o[k], `${name}.${k}`);
  return out as Partial<T>;
}

const DEVICE = /^(auto|cpu|(cuda|gpu)(:\d{1,4})?)$/i;
const device: Check = (v, name) => (DEVICE.test(text(v, name)) ? v : fail('usage', `${name} must be auto, cpu, cuda or cuda:N, not ${show(v)}`));
const numbers =
  (check: Check): Check =>
  (v, name) => {
    const xs = list(v, name);
    if (!xs.length) fail('usage', `${name} must have at least one number`);
    return xs.map((x, i) => check(x, `${name}[${i}]`));
  };
const nonZero: Check = (v, name) => (finite(-Infinity)(v, name) === 0 ? fail('usage', `${name} must not be 0`) : v);

const PREPROCESS_CHECKS: Record<keyof Preprocess, Check> = {
  layout: oneOf(['NCHW', 'NHWC']),
  channels: int(1, 4096),
  height: int(1, 1 << 16),
  width: int(1, 1 << 16),
  resize: oneOf(['bilinear', 'nearest', 'area']),
  scale: nullable(nonZero),
  mean: numbers(finite(-Infinity)),
  std: numbers(nonZero),
};

const VERIFY_OPTIONAL: Record<string, Check> = {
  against: nullable(absolutePath),
  device,
  batchSize: int(1, 1 << 16),
  limit: nullable(int(1, 2 ** 31 - 1)),
  dataFormat: nullable(oneOf(['npz', 'idx', 'cifar', 'imagefolder'])),
  preprocess: (v, name) => optionalFields<Preprocess>(fields(v, name, Object.keys(PREPROCESS_CHECKS)), name, PREPROCESS_CHECKS),
  atol: finite(0),
  rtol: finite(0),
  trustNames: bool,
  bnEps: finite(0, Infinity, true),
  // the Python-model source: a class the user's own python imports (`file.py:Class`, `pkg.mod:Class`)
  modelClass: nullable((v, name) => (/^[^\n]+$/.test(text(v, name)) ? v : fail('usage', `${name} must be file.py:ClassName or package.module:ClassName`))),
  modelArgs: nullable((v, name) => (isRecord(v) && JSON.stringify(v).length <= MAX_TEXT ? v : fail('usage', `${name} must be an object of keyword arguments`))),
  python: nullable(absolutePath),
};

/** `VerifyOptions`: the three files as absolute paths, every other field optional and checked. */
export function verifyOptions(v: unknown, name = 'options'): VerifyOptions {
  const o = fields(v, name, ['model', 'data', 'checkpoint', ...Object.keys(VERIFY_OPTIONAL)]);
  return {
    // with a Python model class there is no graph: `model` stays empty
    model: o['modelClass'] && o['model'] === '' ? '' : absolutePath(o['model'], `${name}.model`),
    data: absolutePath(o['data'], `${name}.data`),
    checkpoint: absolutePath(o['checkpoint'], `${name}.checkpoint`),
    ...optionalFields<VerifyOptions>(o, name, VERIFY_OPTIONAL),
  };
}

/** An object with at least these fields, each checked; other fields are let through (newer reports). */
const shaped =
  (checks: Record<string, Check>): Check =>
  (v, name) => {
    if (!isRecord(v)) fail('usage', `${name} must be an object, not ${show(v)}`);
    for (const [k, check] of Object.entries(checks)) check(v[k], `${name}.${k}`);
    return v;
  };
const listOf =
  (check: Check, max = Number.MAX_SAFE_INTEGER): Check =>
  (v, name) => {
    if (!Array.isArray(v)) fail('usage', `${name} must be a list, not ${show(v)}`);
    if (v.length > max) fail('usage', `${name} has more than ${max} entries`);
    v.forEach((x, i) => check(x, `${name}[${i}]`));
    return v;
  };
const recordOf =
  (check: Check): Check =>
  (v, name) => {
    if (!isRecord(v)) fail('usage', `${name} must be an object, not ${show(v)}`);
    for (const [k, x] of Object.entries(v)) check(x, `${name}.${k.slice(0, 60)}`);
    return v;
  };
const anyNumber: Check = (v, name) => (typeof v === 'number' ? v : fail('usage', `${name} must be a number, not ${show(v)}`));
const count = int(0, Number.MAX_SAFE_INTEGER);
const base64Upload: Check = (v, name) => {
  if (typeof v !== 'string' || v.length > Math.ceil(MAX_UPLOAD_BYTES / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(v))
    fail('usage', `${name} must be base64 of at most ${MAX_UPLOAD_BYTES >> 20} MiB`);
  return v;
};
/** one path component: what a browser gives as a dropped file's name */
const fileName: Check = (v, name) => {
  const s = text(v, name);
  if (!s || s.length > 255 || /[\\/]/.test(s) || s === '.' || s === '..') fail('usage', `${name} must be a file name without folders, not ${show(s)}`);
  return s;
};
const anyString: Check = (v, name) => (typeof v === 'string' ? v : fail('usage', `${name} must be a string, not ${show(v)}`));
const dims = listOf((v, name) => (typeof v === 'number' || typeof v === 'string' ? v : fail('usage', `${name} must be a size or a name`)));
const sha: Check = (v, name) => (typeof v === 'string' && /^[0-9a-f]{0,64}$/.test(v) ? v : fail('usage', `${name} must be a sha256 in hex`));

/**
 * A `VerifyReport` as a verification returned it (to render as HTML): every field the page shows
 * has its type, numbers are numbers, so nothing unescaped reaches the page.
 */
const VERIFY_REPORT = shaped({
  version: (v, name) => (v === 1 ? v : fail('usage', `${name} must be 1 (a report of this version of ckpt verify)`)),
  createdAt: anyString,
  options: shaped({ checkpoint: anyString, against: (v, n) => (v === undefined ? v : nullable(anyString)(v, n)) }),
  model: shaped({
    file: anyString,
    producer: anyString,
    opset: nullable(anyNumber),
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
    classNames: nullable(listOf(anyString)),
    notes: listOf(anyString),
    preprocess: shaped({
      layout: anyString,
      channels: count,
      height: count,
      width: count,
      resize: anyString,
      scale: nullable(anyNumber),
      mean: listOf(anyNumber),
      std: listOf(anyNumber),
    }),
  }),
  provider: shaped({ requested: anyString, used: oneOf(['cpu', 'cuda']), deviceId: nullable(count), fallback: nullable(anyString), onnxruntime: anyString }),
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
  runs: listOf(
    shaped({
      label: anyString,
      file: nullable(anyString),
      recorded: listOf(shaped({ path: anyString, value: anyNumber, fraction: nullable(anyNumber) })),
      inferenceSeconds: anyNumber,
      imagesPerSecond: anyNumber,
      metrics: shaped({
        samples: count,
        correct: count,
        top1: anyNumber,
        top5: nullable(anyNumber),
        logitsSha256: sha,
        predictions: listOf(count),
        perClass: listOf(shaped({ samples: count, correct: count, accuracy: nullable(anyNumber) })),
        confusion: listOf(listOf(count)),
      }),
    }),
    16,
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

export const verifyReport = (v: unknown, name = 'report'): VerifyReport => VERIFY_REPORT(v, name) as VerifyReport;

function reshardTarget(v: unknown, name: string): ReshardTarget {
  const t = fields(v, name, ['kind', 'count', 'ranks', 'maxShardBytes']);
  switch (t['kind']) {
    case 'single':
      fields(t, name, ['kind']);
      return { kind: 'single' };
    case 'ranks':
      fields(t, name, ['kind', 'count']);
      return { kind: 'ranks', count: int(1, 4096)(t['count'], `${name}.count`) as number };
    case 'dcp':
      fields(t, name, ['kind', 'ranks']);
      return { kind: 'dcp', ranks: int(1, 4096)(t['ranks'], `${name}.ranks`) as number };
    case 'shards':
      fields(t, name, ['kind', 'maxShardBytes']);
      return { kind: 'shards', maxShardBytes: int(1, Number.MAX_SAFE_INTEGER)(t['maxShardBytes'], `${name}.maxShardBytes`) as number };
    default:
      return fail('usage', `${name}.kind must be single, ranks, dcp or shards, not ${show(t['kind'])}`);
  }
}

const RESHARD_FIELDS = ['inputs', 'target', 'format', 'output', 'force', 'preset', 'takeRank', 'dryRun'] as const;

/** `ReshardRequest`: every field present; inputs and output absolute paths. */
export function reshardRequest(v: unknown, name = 'request'): ReshardRequest {
  const r = fields(v, name, [...RESHARD_FIELDS, 'keepObjects', ...CAST_FIELDS]);
  const missing = RESHARD_FIELDS.find((k) => !(k in r));
  if (missing) fail('usage', `${name}.${missing} is missing`);
  const inputs = list(r['inputs'], `${name}.inputs`).map((x, i) => absolutePath(x, `${name}.inputs[${i}]`));
  if (!inputs.length) fail('usage', `${name}.inputs must name at least one file or folder`);
  return {
    inputs,
    target: reshardTarget(r['target'], `${name}.target`),
    format: oneOf(['torch', 'safetensors'])(r['format'], `${name}.format`) as ReshardRequest['format'],
    output: absolutePath(r['output'], `${name}.output`),
    force: bool(r['force'], `${name}.force`) as boolean,
    preset: r['preset'] === null ? null : preset(r['preset'], `${name}.preset`),
    takeRank: nullable(int(0, 65535))(r['takeRank'], `${name}.takeRank`) as number | null,
    dryRun: bool(r['dryRun'], `${name}.dryRun`) as boolean,
    ...('keepObjects' in r && bool(r['keepObjects'], `${name}.keepObjects`) ? { keepObjects: true } : {}),
    ...castFields(r, name),
  };
}

const jobId: Check = (v, name) =>
  typeof v === 'string' && /^job-\d{1,9}$/.test(v) ? v : fail('usage', `${name} must be a job id like 'job-3', not ${show(v)}`);
const anyText: Check = (v, name) => text(v, name);

/** The app's edits of a fit's mapping: `{from, to}`, `to` a key or null (left out). */
const fitEdits: Check = (v, name) =>
  list(v, name).map((x, i) => {
    const n = `${name}[${i}]`;
    const o = fields(x, n, ['from', 'to']);
    return { from: text(o['from'], `${n}.from`), to: nullable(text)(o['to'], `${n}.to`) as string | null };
  });

/** `{file}` (an absolute path) or `{text}` (pasted, up to 4 MiB: torch's error for 10,000 keys is long). */
const fitTarget: Check = (v, name) => {
  const t = fields(v, name, ['file', 'text']);
  if ('file' in t && !('text' in t)) return { file: absolutePath(t['file'], `${name}.file`) };
  if ('text' in t && !('file' in t)) {
    const s = t['text'];
    if (typeof s !== 'string' || s.length > 4 << 20 || s.includes('\0')) fail('usage', `${name}.text must be text of at most 4 MiB`);
    return { text: s };
  }
  return fail('usage', `${name} must be {file} or {text}`);
};

const SPECS: Record<ApiMethod, Arg[]> = {
  getWorkspace: [],
  listDirectory: [{ name: 'dir', check: absolutePath }],
  findDroppedFile: [
    { name: 'name', check: fileName },
    { name: 'bytes', check: count },
    { name: 'modifiedMs', check: count },
    { name: 'folders', check: (v, name) => list(v, name).map((f, i) => absolutePath(f, `${name}[${i}]`)) },
  ],
  uploadDroppedFile: [
    { name: 'name', check: fileName },
    { name: 'base64', check: base64Upload },
  ],
  chooseFile: [
    { name: 'kind', check: oneOf(['file', 'folder', 'save']) },
    { name: 'suggested', check: anyText, optional: true },
  ],
  addRecent: [{ name: 'file', check: absolutePath }],
  inspect: [{ name: 'file', check: absolutePath }],
  tensorStats: [
    { name: 'file', check: absolutePath },
    { name: 'path', check: tensorPath },
    { name: 'bins', check: int(1, 1024) },
  ],
  previewConversion: [
    { name: 'file', check: absolutePath },
    { name: 'rules', check: conversionRules },
    { name: 'output', check: nullable(absolutePath) },
  ],
  startConversion: [
    { name: 'file', check: absolutePath },
    { name: 'rules', check: conversionRules },
    { name: 'output', check: nullable(absolutePath) },
    { name: 'force', check: bool },
  ],
  planBatch: [
    { name: 'folder', check: absolutePath },
    { name: 'outDir', check: absolutePath },
    { name: 'rules', check: conversionRules },
  ],
  startBatch: [
    { name: 'folder', check: absolutePath },
    { name: 'outDir', check: absolutePath },
    { name: 'rules', check: conversionRules },
    { name: 'force', check: bool },
    { name: 'jobs', check: int(1, 64) },
  ],
  cancelJob: [{ name: 'job', check: jobId }],
  jobStatus: [{ name: 'job', check: jobId }],
  startVerify: [{ name: 'options', check: verifyOptions }],
  verifyReportHtml: [{ name: 'report', check: verifyReport }],
  planReshard: [{ name: 'request', check: reshardRequest }],
  startReshard: [{ name: 'request', check: reshardRequest }],
  readDevices: [],
  devicePlan: [
    { name: 'deviceCounts', check: deviceCounts },
    { name: 'ddpWorldSize', check: int(1, 4096), optional: true },
  ],
  watchDevices: [{ name: 'on', check: bool }],
  fitCheckpoint: [
    { name: 'file', check: absolutePath },
    { name: 'target', check: fitTarget },
    { name: 'renames', check: renameList },
    { name: 'edits', check: fitEdits, optional: true },
  ],
  startFitConversion: [
    { name: 'file', check: absolutePath },
    { name: 'target', check: fitTarget },
    { name: 'edits', check: fitEdits },
    { name: 'output', check: absolutePath },
    { name: 'force', check: bool },
  ],
  diffCheckpoints: [
    { name: 'a', check: absolutePath },
    { name: 'b', check: absolutePath },
    { name: 'exactKeys', check: bool },
  ],
  diffHistograms: [
    { name: 'a', check: absolutePath },
    { name: 'b', check: absolutePath },
    { name: 'key', check: anyText },
    { name: 'exactKeys', check: bool },
    { name: 'bins', check: int(1, 1024) },
  ],
};

/** The arguments of a call as a list (what a transport passes on to the service, which checks them). */
export function argumentList(method: ApiMethod, args: unknown): unknown[] {
  if (!isApiMethod(method)) fail('usage', `unknown API method '${String(method).slice(0, 60)}'`);
  if (!Array.isArray(args)) fail('usage', `${method} takes a list of arguments, not ${show(args)}`);
  return args;
}

export const isApiMethod = (m: unknown): m is ApiMethod => typeof m === 'string' && (API_METHODS as readonly string[]).includes(m);

/**
 * The checked (and normalised) arguments of a call. Optional trailing arguments may be left
 * out, or given as null or undefined (JSON turns undefined into null).
 */
export function checkArgs(method: ApiMethod, given: unknown): unknown[] {
  const args = argumentList(method, given);
  const spec = SPECS[method];
  const required = spec.filter((a) => !a.optional).length;
  if (args.length < required || args.length > spec.length) {
    const count = required === spec.length ? `${spec.length}` : `${required} to ${spec.length}`;
    fail('usage', `${method} takes ${count} argument${spec.length === 1 ? '' : 's'} (${spec.map((a) => a.name).join(', ') || 'none'}), not ${args.length}`);
  }
  const out: unknown[] = [];
  spec.forEach((a, i) => {
    const v = args[i];
    if (a.optional && (v === undefined || v === null)) return;
    out[i] = a.check(v, a.name);
  });
  return out;
}
