import type { LayoutVerdict } from './inspect.ts';
import { PRESETS, type CastSummary, type ConversionRules } from './presets.ts';

/**
 * What a conversion will do, computed before anything is written: the preview the CLI prints for
 * `--dry-run` and the UI shows live.
 */
export interface KeyChange {
  from: string;
  /** null: dropped by include/exclude */
  to: string | null;
}

export interface StateDictPlan {
  /** where the state dict is, from the root of the source */
  path: (string | number)[];
  kind: 'state-dict' | 'module';
  className?: string;
  keys: KeyChange[];
  /** wrapper prefixes the preset removes, outermost first */
  stripped: string[];
  /** prefixes added after that, outermost first (dp/ddp add exactly one `module.`) */
  added: string[];
  /** `_metadata` module paths before → after */
  metadata: KeyChange[];
}

export interface DeviceChange {
  from: string;
  to: string;
  /** tensors (in the whole file, optimizer state included) that move */
  tensors: number;
  bytes: number;
}

export interface OutputPlan {
  /** where the file will be written */
  file: string;
  /** DDP rank, for per-rank outputs */
  rank?: number;
  devices: DeviceChange[];
  exists: boolean;
  /** what the file there holds now (the app's preview only), so replacing it names it */
  holds?: ExistingOutput;
}

export interface ExistingOutput {
  /** `a CPU state dict + optimizer state: 16 tensors on cpu`, or why it is not a checkpoint */
  what: string;
  bytes: number;
  /** ISO time of the last modification */
  modified: string;
}

export interface ConversionPlan {
  source: string;
  format: string;
  rules: ConversionRules;
  layoutBefore: LayoutVerdict;
  /** the layout the output will have */
  layoutAfter: string;
  stateDicts: StateDictPlan[];
  outputs: OutputPlan[];
  /** the container is replaced by its state dict (`--unwrap`) or a module by its state dict */
  rootChange: string | null;
  /** tensors written / dropped */
  tensors: { kept: number; dropped: number };
  /** non-tensor content carried over unchanged (epoch, args, numpy scalars, objects) */
  carried: string[];
  warnings: string[];
  /** problems that stop the conversion (e.g. two keys mapping to one) */
  errors: string[];
}

export interface TensorCheck {
  /** path in the output */
  path: (string | number)[];
  /** path in the source */
  sourcePath: (string | number)[];
  dtype: string;
  shape: number[];
  device: string;
  /** CRC-32 of the storage bytes in the source and in the written file */
  crc32: string;
  ok: boolean;
  problem?: string;
}

export interface OutputReport {
  file: string;
  rank?: number;
  bytes: number;
  storages: number;
  tensors: number;
  verified: boolean;
  /** the first mismatch, when not verified */
  mismatch?: string;
  checks: TensorCheck[];
  /** length and SHA-256 of the written archive's tail (its central directory): a fingerprint of the file */
  tail?: { bytes: number; sha256: string };
  /** the output existed already, was verified against the source and kept (a batch re-run) */
  adopted?: boolean;
}

export interface ConversionReport {
  source: string;
  plan: ConversionPlan;
  outputs: OutputReport[];
  verified: boolean;
  /** seconds spent writing and verifying */
  seconds: number;
  /** bytes of storage data copied (all outputs) */
  bytesCopied: number;
  /** what was done so that the output carries no code (see main/convert/code-free-output.ts) */
  codeFree?: CodeFreeReport;
  /** `--dtype`: what was cast, and the values that overflowed or underflowed */
  cast?: CastSummary;
}

export interface CodeFreeReport {
  /** values made plain data, e.g. `numpy scalar → Python float (3×)` */
  converted: string[];
  /** non-allowlisted globals kept because of --keep-objects */
  kept: string[];
  /** the source's flagged globals the output does not carry (after --unwrap or --export-state-dict) */
  leftBehind: string[];
}

export interface Progress {
  done: number;
  total: number;
  unit: 'bytes' | 'files' | 'tensors' | 'samples';
  /** what is being worked on */
  label?: string;
}

/**
 * How to load what a conversion wrote: the preset's line, reaching into the container when the
 * state dict is not the whole file (a training checkpoint's `sd['model']`, not `sd`), with gpu:K's
 * index filled in, and `weights_only=False` where --keep-objects kept what torch.load's
 * weights-only default refuses. Null without a preset.
 */
export function loadsWithFor(plan: Pick<ConversionPlan, 'rules'> & { stateDicts: Pick<StateDictPlan, 'kind' | 'path'>[] }, keptObjects = false): string | null {
  const preset = plan.rules.preset;
  const info = preset ? PRESETS.find((p) => p.name === preset.name) : undefined;
  if (!preset || !info) return null;
  let line = preset.name === 'gpu' ? info.loadsWith.replaceAll('cuda:K', `cuda:${preset.index}`) : info.loadsWith;
  const inner = plan.rules.unwrap ? null : plan.stateDicts.find((s) => s.kind === 'state-dict' && s.path.length > 0);
  if (inner) {
    const at = inner.path.map((k) => (typeof k === 'number' ? `[${k}]` : `['${k.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}']`)).join('');
    line = line
      .replace(/load_state_dict\(sd\b/, `load_state_dict(sd${at}`)
      .replace(/load_state_dict\(torch\.load\(([^()]*)\)/, `load_state_dict(torch.load($1)${at}`);
  }
  // What --keep-objects kept, torch.load's weights-only default (torch >= 2.6) refuses
  if (keptObjects)
    line = /torch\.load\(/.test(line)
      ? line.replace(/torch\.load\(([^()]*)\)/, 'torch.load($1, weights_only=False)')
      : `${line}, with sd = torch.load(f, weights_only=False)`;
  return line;
}
