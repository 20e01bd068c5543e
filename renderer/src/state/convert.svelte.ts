// The Convert view's settings and its running or finished conversion. Kept outside the view so
// switching views keeps them, and so the Devices view can apply a device plan here.
import type { ConversionReport } from '../../../shared/convert.ts';
import type { DeviceFix } from '../../../shared/devices.ts';
import { parseMapLocation, parsePreset, regexError, type ConversionRules, type Preset } from '../../../shared/presets.ts';
import { getApi } from '../api/index.ts';
import { baseName } from '../lib/format.ts';
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
    preset: 'cpu',
    gpuIndex: 0,
    worldSize: 2,
    stripPrefixes: '',
    addPrefix: '',
    renames: [],
    include: '',
    exclude: '',
    mapLocation: [],
    unwrap: false,
    exportStateDict: false,
  };
}

export function presetOf(s: RuleSettings): Preset | null {
  switch (s.preset) {
    case 'cpu':
      return { name: 'cpu' };
    case 'dp':
      return { name: 'dp' };
    case 'gpu':
      return { name: 'gpu', index: Math.max(0, Math.floor(s.gpuIndex || 0)) };
    case 'ddp':
      return { name: 'ddp', worldSize: Math.max(1, Math.floor(s.worldSize || 1)) };
    default:
      return null;
  }
}

/** The problem of each rule field that has one, to show at the field itself. */
export interface FieldErrors {
  include: string | null;
  exclude: string | null;
  renames: (string | null)[];
  mapLocation: (string | null)[];
}

export function fieldErrors(s: RuleSettings): FieldErrors {
  const remap = (m: { from: string; to: string }): string | null => {
    if (!m.from && !m.to) return null;
    const parsed = parseMapLocation(`${m.from}=${m.to}`);
    return typeof parsed === 'string' ? parsed.replace('--map-location', 'Device remap') : null;
  };
  return {
    include: s.include ? regexError(s.include) : null,
    exclude: s.exclude ? regexError(s.exclude) : null,
    renames: s.renames.map((r) => (r.pattern ? regexError(r.pattern) : null)),
    mapLocation: s.mapLocation.map(remap),
  };
}

/** Whether any custom rule is set (the Custom rules section opens for them). */
export function hasCustomRules(s: RuleSettings): boolean {
  return s.renames.length > 0 || s.mapLocation.length > 0 || !!s.stripPrefixes || !!s.addPrefix || !!s.include || !!s.exclude;
}

/** Settings as the contract's rules, plus every problem that stops them being used. */
export function rulesOf(s: RuleSettings): { rules: ConversionRules; problems: string[] } {
  const problems: string[] = [];
  if (s.preset === 'gpu' && !(Number.isInteger(s.gpuIndex) && s.gpuIndex >= 0)) problems.push('The GPU index must be a whole number, 0 or more.');
  if (s.preset === 'ddp' && !(Number.isInteger(s.worldSize) && s.worldSize >= 1 && s.worldSize <= 4096))
    problems.push('The world size must be a whole number from 1 to 4096.');
  const renames = s.renames.filter((r) => r.pattern !== '');
  const fields = fieldErrors(s);
  for (const err of fields.renames) if (err) problems.push(`Rename: ${err}`);
  if (fields.include) problems.push(`Include: ${fields.include}`);
  if (fields.exclude) problems.push(`Exclude: ${fields.exclude}`);
  for (const err of fields.mapLocation) if (err) problems.push(err);
  const mapLocation: { from: string; to: string }[] = [];
  for (const m of s.mapLocation) {
    const parsed = m.from || m.to ? parseMapLocation(`${m.from}=${m.to}`) : null;
    if (parsed && typeof parsed !== 'string') mapLocation.push(parsed);
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
  /** the source the output path was chosen for */
  outputFor = $state<string | null>(null);
  /** said once when the output path was reset because the source changed */
  outputNote = $state<string | null>(null);
  /** the source and output files the Overwrite tick was given for */
  private forcedFor = '';

  /**
   * An output path belongs to the source it was chosen for: opening another file puts the output
   * back to the default beside the new source (a name like `dp-cpu.pt` would lie about a
   * training checkpoint's conversion) and says so.
   */
  followSource(file: string): void {
    if (this.outputFor !== null && this.outputFor !== file && this.output.trim()) {
      this.outputNote = `Output reset to the default for ${baseName(file)}: ${this.output.trim()} was chosen for ${baseName(this.outputFor)}.`;
      this.output = '';
    }
    if (this.outputFor !== file) this.force = false;
    this.outputFor = file;
  }

  /** Overwrite is given for one source and its output files: any change of either takes it back. */
  followTarget(file: string, outputs: readonly string[]): void {
    const target = JSON.stringify([file, outputs]);
    if (target !== this.forcedFor) {
      this.force = false;
      this.forcedFor = target;
    }
  }

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
    this.force = false;
  }

  async start(file: string, rules: ConversionRules): Promise<void> {
    const api = getApi();
    await this.follow(() => api.startConversion(file, rules, this.output.trim() || null, this.force));
  }
}

export const convert = new ConvertState();
