// The Convert view's settings and its running or finished conversion. Kept outside the view so
// switching views keeps them, and so the Devices view can apply a device plan here.
import type { ConversionReport } from '../../../shared/convert.ts';
import type { DeviceFix } from '../../../shared/devices.ts';
import { parseMapLocation, parsePreset, regexError, type ConversionRules, type Preset } from '../../../shared/presets.ts';
import { getApi } from '../api/index.ts';
import { JobRun, type RunState as JobRunState } from './job-run.svelte.ts';

export type PresetChoice = 'cpu' | 'gpu' | 'dp' | 'ddp' | 'none';

export interface RuleSettings {
  preset: PresetChoice;
  gpuIndex: number;
  worldSize: number;
  stripPrefixes: string;
  addPrefix: string;
  renames: { pattern: string; replacement: string }[];
  include: string;
  exclude: string;
  mapLocation: { from: string; to: string }[];
  unwrap: boolean;
  exportStateDict: boolean;
}

export function defaultSettings(): RuleSettings {
  return {
    preset: 'cpu', gpuIndex: 0, worldSize: 2, stripPrefixes: '', addPrefix: '', renames: [], include: '', exclude: '', mapLocation: [],
    unwrap: false, exportStateDict: false,
  };
}

export function presetOf(s: RuleSettings): Preset | null {
  switch (s.preset) {
    case 'cpu': return { name: 'cpu' };
    case 'dp': return { name: 'dp' };
    case 'gpu': return { name: 'gpu', index: Math.max(0, Math.floor(s.gpuIndex || 0)) };
    case 'ddp': return { name: 'ddp', worldSize: Math.max(1, Math.floor(s.worldSize || 1)) };
    default: return null;
  }
}

/** Settings as the contract's rules, plus every problem that stops them being used. */
export function rulesOf(s: RuleSettings): { rules: ConversionRules; problems: string[] } {
  const problems: string[] = [];
  if (s.preset === 'gpu' && !(Number.isInteger(s.gpuIndex) && s.gpuIndex >= 0)) problems.push('The GPU index must be a whole number, 0 or more.');
  if (s.preset === 'ddp' && !(Number.isInteger(s.worldSize) && s.worldSize >= 1 && s.worldSize <= 4096)) problems.push('The world size must be a whole number from 1 to 4096.');
  const renames = s.renames.filter((r) => r.pattern !== '');
  for (const r of renames) {
    const err = regexError(r.pattern);
    if (err) problems.push(`Rename: ${err}`);
  }
  for (const [name, v] of [['Include', s.include], ['Exclude', s.exclude]] as const) {
    const err = v ? regexError(v) : null;
    if (err) problems.push(`${name}: ${err}`);
  }
  const mapLocation: { from: string; to: string }[] = [];
  for (const m of s.mapLocation) {
    if (!m.from && !m.to) continue;
    const parsed = parseMapLocation(`${m.from}=${m.to}`);
    if (typeof parsed === 'string') problems.push(parsed.replace('--map-location', 'Device remap'));
    else mapLocation.push(parsed);
  }
  return {
    rules: {
      preset: presetOf(s),
      stripPrefixes: s.stripPrefixes.split(/[\s,]+/).filter(Boolean),
      addPrefix: s.addPrefix || null,
      renames,
      include: s.include || null,
      exclude: s.exclude || null,
      mapLocation,
      unwrap: s.unwrap,
      exportStateDict: s.exportStateDict,
    },
    problems,
  };
}

export type RunState = JobRunState<ConversionReport>;

class ConvertState extends JobRun<'convert'> {
  settings = $state<RuleSettings>(defaultSettings());
  output = $state('');
  force = $state(false);
  /** set when the Devices view applied a device plan, shown once above the rules */
  appliedFrom = $state<string | null>(null);

  constructor() {
    super('convert');
  }

  /** Sets the preset and remaps a device plan proposes (`gpu:0`, `{ 'cuda:3': 'cuda:0' }`). */
  applyFix(fix: DeviceFix): void {
    const next = { ...this.settings };
    if (fix.preset) {
      const p = parsePreset(fix.preset);
      if (typeof p !== 'string') {
        next.preset = p.name;
        if (p.name === 'gpu') next.gpuIndex = p.index;
      }
    }
    const remaps = Object.entries(fix.remap ?? {}).map(([from, to]) => ({ from, to }));
    if (remaps.length) next.mapLocation = [...next.mapLocation.filter((m) => !(fix.remap ?? {})[m.from]), ...remaps];
    this.settings = next;
    this.appliedFrom = fix.line;
  }

  async start(file: string, rules: ConversionRules): Promise<void> {
    const api = getApi();
    await this.follow(() => api.startConversion(file, rules, this.output.trim() || null, this.force));
  }
}

export const convert = new ConvertState();
