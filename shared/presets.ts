/**
 * Conversion presets and custom rules: plain data shared by the CLI, the engine and the UI, so a
 * preview shows exactly what a conversion will do.
 */
import * as v from 'valibot';
import { bool, fields, list, oneOf, regex, regexError, show, text, variantFields, wholeNumber } from './checks.ts';
import { didYouMean } from './did-you-mean.ts';

export { regexError };
export type PresetName = 'cpu' | 'gpu' | 'dp' | 'ddp';

export const PresetSchema = v.variant(
  'name',
  [
    variantFields({ name: v.literal('cpu') }),
    variantFields({ name: v.literal('gpu'), index: wholeNumber(0, 1023) }),
    variantFields({ name: v.literal('dp') }),
    variantFields({ name: v.literal('ddp'), worldSize: wholeNumber(1, 4096) }),
  ],
  (issue) => (issue.path ? `must be cpu, gpu, dp or ddp, not ${show(issue.input)}` : `must be an object, not ${show(issue.input)}`),
);
export type Preset = v.InferOutput<typeof PresetSchema>;

export const CAST_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export type CastDtype = (typeof CAST_DTYPES)[number];

/** `--dtype` fields, optional in rules and re-shard requests. */
export const CAST_FIELDS = {
  /** `--dtype`: floating tensors cast as torch's `.to(dtype)` does; null keeps every dtype */
  castTo: v.exactOptional(v.nullable(oneOf(CAST_DTYPES))),
  /** `--keep-dtype RE`: tensors whose dotted name matches keep their dtype */
  keepDtype: v.exactOptional(v.nullable(regex)),
};

/** `[{pattern, replacement}]`: regex renames, as the rules and fit take them. */
export const RenameListSchema = list(fields({ pattern: regex, replacement: text }));

const MapLocationSchema = v.pipe(
  fields({ from: text, to: text }),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const m = parseMapLocation(`${dataset.value.from}=${dataset.value.to}`);
    if (typeof m !== 'string') return m;
    addIssue({ message: `: ${m.replace(/^--map-location: /, '')}` });
    return NEVER;
  }),
);

/** Conversion rules as the API takes them: every field but the optional ones present. */
export const ConversionRulesSchema = fields({
  preset: v.nullable(PresetSchema),
  /** prefixes stripped from the start of keys, in order (never replaced inside keys) */
  stripPrefixes: list(text),
  /** a prefix added to the start of every key, after stripping */
  addPrefix: v.nullable(text),
  /** regex renames applied in order to each key: `pattern` → `replacement` ($1 etc. allowed) */
  renames: RenameListSchema,
  /** keep only keys matching this regex */
  include: v.nullable(regex),
  /** drop keys matching this regex (e.g. `^fc\.` for fine-tuning) */
  exclude: v.nullable(regex),
  /**
   * device remaps with `torch.load`'s `map_location` dict meaning: a saved tag → a new tag.
   * `*` matches every tag. Explicit remaps win over the preset's device rule.
   */
  mapLocation: list(MapLocationSchema),
  /** `{'state_dict': sd, ...}` → `sd`: write only the model state dict */
  unwrap: bool,
  /** write a whole pickled module (incl. `DataParallel(model)`) as a plain state dict */
  exportStateDict: bool,
  /**
   * carry classes and callables torch.load(weights_only=True) refuses (never dangerous ones);
   * without it an output holds only allowlisted globals (`--keep-objects`)
   */
  keepObjects: v.exactOptional(bool),
  ...CAST_FIELDS,
});

export type ConversionRules = v.InferOutput<typeof ConversionRulesSchema> & {
  /**
   * exact key → new key (null: dropped), as `ckpt convert --fit` computes it; keys it lists skip
   * every other key rule (set by the CLI, never taken from the API)
   */
  keyMap?: { from: string; to: string | null }[];
};

/** What `--dtype` did: tensors cast, kept by --keep-dtype, already in the dtype; values that became ±Inf or ±0. */
export interface CastSummary {
  dtype: CastDtype;
  cast: number;
  kept: number;
  unchanged: number;
  /** finite values that overflowed to ±Inf */
  overflow: number;
  /** non-zero values that underflowed to ±0 */
  underflow: number;
}

export const NO_RULES: ConversionRules = {
  preset: null,
  stripPrefixes: [],
  addPrefix: null,
  renames: [],
  include: null,
  exclude: null,
  mapLocation: [],
  unwrap: false,
  exportStateDict: false,
};

/** Wrapper prefixes a preset removes, in the order wrappers stack them (outermost first). */
export const WRAPPER_PREFIXES = ['module.', '_orig_mod.', '_forward_module.'] as const;

export interface PresetInfo {
  name: PresetName;
  title: string;
  keys: string;
  devices: string;
  loadsWith: string;
}

export const PRESETS: readonly PresetInfo[] = [
  {
    name: 'cpu',
    title: 'CPU',
    keys: "wrapper prefixes removed ('module.', '_orig_mod.', Lightning's 'model.' and '_forward_module.', stacked)",
    devices: 'all cpu',
    loadsWith: 'torch.load(f) with no map_location, then model.load_state_dict(sd)',
  },
  {
    name: 'gpu',
    title: 'single GPU',
    keys: 'wrapper prefixes removed',
    devices: 'all cuda:K (default 0)',
    loadsWith: "model.to('cuda:K'); model.load_state_dict(torch.load(f))",
  },
  {
    name: 'dp',
    title: 'DataParallel',
    keys: "exactly one 'module.' prefix",
    devices: 'all cuda:0 (DataParallel keeps master weights on device_ids[0])',
    loadsWith: 'nn.DataParallel(model).load_state_dict(sd, strict=True)',
  },
  {
    name: 'ddp',
    title: 'DistributedDataParallel',
    keys: "exactly one 'module.' prefix",
    devices: 'rank r on cuda:r; one file per rank',
    loadsWith: 'DDP(model, device_ids=[r]).load_state_dict(torch.load(f"…rank{r}.pth"))',
  },
];

/** `cpu`, `gpu`, `gpu:3`, `dp`, `ddp` (world size from `--world-size`). */
export function parsePreset(text: string, worldSize = 1): Preset | string {
  const m = /^(cpu|gpu|dp|ddp)(?::(\d+))?$/.exec(text.trim());
  if (!m) return `unknown preset '${text}'${didYouMean(text.trim().replace(/:\d+$/, ''), ['cpu', 'gpu', 'dp', 'ddp'])}; use cpu, gpu[:K], dp or ddp`;
  const [, name, idx] = m;
  if (name === 'gpu') return { name: 'gpu', index: idx === undefined ? 0 : Number(idx) };
  if (idx !== undefined) return `preset ${name} takes no index (only gpu:K does)`;
  if (name === 'ddp') {
    if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 4096) return `--world-size must be a whole number from 1 to 4096`;
    return { name: 'ddp', worldSize };
  }
  return { name: name as 'cpu' | 'dp' };
}

export function presetText(p: Preset): string {
  return p.name === 'gpu' ? `gpu:${p.index}` : p.name === 'ddp' ? `ddp (world size ${p.worldSize})` : p.name;
}

/** `cuda:1=cuda:0` or `*=cpu`. */
export function parseMapLocation(text: string): { from: string; to: string } | string {
  const m = /^\s*([^=\s]+)\s*=\s*([^=\s]+)\s*$/.exec(text);
  if (!m) return `--map-location takes FROM=TO, e.g. cuda:1=cuda:0 or *=cpu (got '${text}')`;
  const ok = (d: string): boolean => /^(cpu|meta|mps|xpu(:\d+)?|cuda(:\d+)?|hpu(:\d+)?)$/.test(d);
  if (m[1] !== '*' && !ok(m[1]!)) return `--map-location: '${m[1]}' is not a device tag`;
  if (!ok(m[2]!)) return `--map-location: '${m[2]}' is not a device tag`;
  return { from: m[1]!, to: m[2]! };
}

/** `re=>sub`, e.g. `^backbone\.=>encoder.` */
export function parseRename(text: string): { pattern: string; replacement: string } | string {
  const at = text.indexOf('=>');
  if (at <= 0) return `--rename takes 'REGEX=>REPLACEMENT' (got '${text}')`;
  const pattern = text.slice(0, at);
  const err = regexError(pattern);
  return err ? `--rename: ${err}` : { pattern, replacement: text.slice(at + 2) };
}
