/**
 * Conversion presets and custom rules: plain data shared by the CLI, the engine and the UI, so a
 * preview shows exactly what a conversion will do.
 */
import { didYouMean } from './did-you-mean.ts';
export type PresetName = 'cpu' | 'gpu' | 'dp' | 'ddp';

export type Preset = { name: 'cpu' } | { name: 'gpu'; index: number } | { name: 'dp' } | { name: 'ddp'; worldSize: number };

export interface ConversionRules {
  preset: Preset | null;
  /** prefixes stripped from the start of keys, in order (never replaced inside keys) */
  stripPrefixes: string[];
  /** a prefix added to the start of every key, after stripping */
  addPrefix: string | null;
  /** regex renames applied in order to each key: `pattern` → `replacement` ($1 etc. allowed) */
  renames: { pattern: string; replacement: string }[];
  /** keep only keys matching this regex */
  include: string | null;
  /** drop keys matching this regex (e.g. `^fc\.` for fine-tuning) */
  exclude: string | null;
  /**
   * device remaps with `torch.load`'s `map_location` dict meaning: a saved tag → a new tag.
   * `*` matches every tag. Explicit remaps win over the preset's device rule.
   */
  mapLocation: { from: string; to: string }[];
  /** `{'state_dict': sd, ...}` → `sd`: write only the model state dict */
  unwrap: boolean;
  /** write a whole pickled module (incl. `DataParallel(model)`) as a plain state dict */
  exportStateDict: boolean;
  /**
   * carry classes and callables torch.load(weights_only=True) refuses (never dangerous ones);
   * without it an output holds only allowlisted globals (`--keep-objects`)
   */
  keepObjects?: boolean;
  /**
   * exact key → new key (null: dropped), as `ckpt convert --fit` computes it; keys it lists skip
   * every other key rule
   */
  keyMap?: { from: string; to: string | null }[];
  /** `--dtype`: floating tensors cast as torch's `.to(dtype)` does; null keeps every dtype */
  castTo?: CastDtype | null;
  /** `--keep-dtype RE`: tensors whose dotted name matches keep their dtype */
  keepDtype?: string | null;
}

export type CastDtype = 'float32' | 'bfloat16' | 'float16';

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

export function regexError(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch (e) {
    return `'${pattern}' is not a valid regular expression (${(e as Error).message})`;
  }
}
