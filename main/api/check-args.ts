/**
 * The boundary check of every API call: argument count and types per method, absolute paths,
 * rules shaped like `ConversionRules`, numbers in range. Both transports (HTTP, IPC) and the
 * service itself run it; a wrong argument is a `usage` error with one line saying which.
 */
import * as path from 'node:path';
import { API_METHODS, type ApiMethod } from '../../shared/api.ts';
import { parseMapLocation, regexError, type ConversionRules, type Preset } from '../../shared/presets.ts';
import { fail } from '../formats/errors.ts';

type Check = (v: unknown, name: string) => unknown;
interface Arg { name: string; check: Check; optional?: boolean }

const MAX_TEXT = 4096;
const MAX_LIST = 256;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (v === undefined ? 'nothing' : Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v === 'string' ? `'${v.slice(0, 60)}'` : typeof v);

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

const nullable = (check: Check): Check => (v, name) => (v === null ? null : check(v, name));
const bool: Check = (v, name) => (typeof v === 'boolean' ? v : fail('usage', `${name} must be true or false, not ${show(v)}`));

const int = (lo: number, hi: number): Check => (v, name) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) fail('usage', `${name} must be a whole number from ${lo} to ${hi}, not ${show(v)}`);
  return v;
};

const oneOf = <T extends string>(values: readonly T[]): Check => (v, name) => {
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
    case 'cpu': case 'dp':
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

export function conversionRules(v: unknown, name = 'rules'): ConversionRules {
  const r = fields(v, name, RULE_FIELDS);
  const missing = RULE_FIELDS.find((k) => !(k in r));
  if (missing) fail('usage', `${name}.${missing} is missing`);
  return {
    preset: r['preset'] === null ? null : preset(r['preset'], `${name}.preset`),
    stripPrefixes: list(r['stripPrefixes'], `${name}.stripPrefixes`).map((s, i) => text(s, `${name}.stripPrefixes[${i}]`)),
    addPrefix: nullable(text)(r['addPrefix'], `${name}.addPrefix`) as string | null,
    renames: list(r['renames'], `${name}.renames`).map((x, i) => {
      const n = `${name}.renames[${i}]`;
      const o = fields(x, n, ['pattern', 'replacement']);
      return { pattern: regex(o['pattern'], `${n}.pattern`) as string, replacement: text(o['replacement'], `${n}.replacement`) };
    }),
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
  };
}

const tensorPath: Check = (v, name) => list(v, name).map((k, i) => {
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

const jobId: Check = (v, name) => (typeof v === 'string' && /^job-\d{1,9}$/.test(v) ? v : fail('usage', `${name} must be a job id like 'job-3', not ${show(v)}`));
const anyText: Check = (v, name) => text(v, name);

const SPECS: Record<ApiMethod, Arg[]> = {
  getWorkspace: [],
  listDirectory: [{ name: 'dir', check: absolutePath }],
  chooseFile: [{ name: 'kind', check: oneOf(['file', 'folder', 'save']) }, { name: 'suggested', check: anyText, optional: true }],
  addRecent: [{ name: 'file', check: absolutePath }],
  inspect: [{ name: 'file', check: absolutePath }],
  tensorStats: [{ name: 'file', check: absolutePath }, { name: 'path', check: tensorPath }, { name: 'bins', check: int(1, 1024) }],
  previewConversion: [{ name: 'file', check: absolutePath }, { name: 'rules', check: conversionRules }, { name: 'output', check: nullable(absolutePath) }],
  startConversion: [{ name: 'file', check: absolutePath }, { name: 'rules', check: conversionRules }, { name: 'output', check: nullable(absolutePath) }, { name: 'force', check: bool }],
  planBatch: [{ name: 'folder', check: absolutePath }, { name: 'outDir', check: absolutePath }, { name: 'rules', check: conversionRules }],
  startBatch: [{ name: 'folder', check: absolutePath }, { name: 'outDir', check: absolutePath }, { name: 'rules', check: conversionRules }, { name: 'force', check: bool }, { name: 'jobs', check: int(1, 64) }],
  cancelJob: [{ name: 'job', check: jobId }],
  readDevices: [],
  devicePlan: [{ name: 'deviceCounts', check: deviceCounts }, { name: 'ddpWorldSize', check: int(1, 4096), optional: true }],
  watchDevices: [{ name: 'on', check: bool }],
};

export const isApiMethod = (m: unknown): m is ApiMethod => typeof m === 'string' && (API_METHODS as readonly string[]).includes(m);

/**
 * The checked (and normalised) arguments of a call. Optional trailing arguments may be left
 * out, or given as null or undefined (JSON turns undefined into null).
 */
export function checkArgs(method: ApiMethod, args: unknown): unknown[] {
  if (!isApiMethod(method)) fail('usage', `unknown API method '${String(method).slice(0, 60)}'`);
  if (!Array.isArray(args)) fail('usage', `${method} takes a list of arguments, not ${show(args)}`);
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
