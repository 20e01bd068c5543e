import type { LayoutKind, LayoutVerdict } from '../../shared/inspect.ts';
import type { TorchTensor } from '../formats/values/torch-values.ts';
import type { Role } from './roles.ts';

/**
 * Wrapper prefixes in the order torch wrappers add them. `_forward_module.` is Lightning Fabric's
 * `_FabricModule` (and the strategies built on it) around the user's module.
 */
export const WRAPPER_PREFIXES = ['module.', '_orig_mod.', '_forward_module.', 'model.'] as const;

/**
 * The stacked wrapper prefixes every key shares, outermost first: `_orig_mod.module.conv.weight`
 * gives `['_orig_mod.', 'module.']`. `model.` is a wrapper only in Lightning checkpoints (a
 * LightningModule holding `self.model`); elsewhere, as in Hugging Face or YOLO, it is part of the
 * model's own names.
 */
export function commonPrefixes(keys: string[], lightning = false): string[] {
  const found: string[] = [];
  // the keys are read from `at` on, past the prefixes found (not cut: 100,000 keys made 100,000 strings per prefix)
  let at = 0;
  const candidates = WRAPPER_PREFIXES.filter((w) => lightning || w !== 'model.');
  for (;;) {
    if (keys.length === 0) return found;
    const p = candidates.find((w) => keys.every((k) => k.startsWith(w, at) && k.length > at + w.length));
    if (!p) return found;
    found.push(p);
    at += p.length;
  }
}

export interface LayoutInput {
  /** every tensor in the file, for the device histogram */
  tensors: TorchTensor[];
  roles: Role[];
  /** the file name, for rank hints like `rank1` */
  fileName: string;
  /** set when the file was found as part of a per-rank family */
  familyRank?: number;
}

const RANK_NAME = /(?:^|[^a-z])rank[_-]?(\d+)|_(\d+)\.(?:pt|pth|bin|ckpt)$/i;

export function rankFromName(name: string): number | null {
  const m = RANK_NAME.exec(name);
  return m ? Number(m[1] ?? m[2]) : null;
}

/**
 * Decides cpu / single-GPU / DataParallel / DDP / mixed from device tags and wrapper prefixes,
 * with the evidence for the verdict. Devices of the model weights decide (an optimizer's `step`
 * counters live on the CPU even for GPU training).
 */
export function detectLayout(input: LayoutInput): LayoutVerdict {
  const devices: Record<string, number> = {};
  // indexed, not `for…of`: see `analyse` (inspect.ts)
  for (let i = 0; i < input.tensors.length; i++) {
    const device = input.tensors[i]!.device;
    devices[device] = (devices[device] ?? 0) + 1;
  }
  const evidence: string[] = [];
  const models = input.roles.filter((r) => r.kind === 'state-dict' || r.kind === 'module');
  const primary = models.reduce<Role | undefined>((best, r) => ((r.entries?.length ?? 0) > (best?.entries?.length ?? 0) ? r : best), undefined);
  const keys = primary?.entries?.map((e) => e.key) ?? [];
  const prefixes = commonPrefixes(
    keys,
    input.roles.some((r) => r.kind === 'lightning'),
  );
  const weightDevices: Record<string, number> = {};
  const primaryEntries = primary?.entries ?? [];
  for (let i = 0; i < primaryEntries.length; i++) {
    const device = primaryEntries[i]!.tensor.device;
    weightDevices[device] = (weightDevices[device] ?? 0) + 1;
  }
  const deciding = Object.keys(weightDevices).length ? weightDevices : devices;
  const tags = Object.keys(deciding).sort();

  if (primary) {
    const where = primary.path.length ? `at ${primary.path.join('/')}` : 'at the top level';
    const container =
      primary.kind !== 'module'
        ? 'state dict'
        : `${primary.note === 'TorchScript module' ? 'TorchScript module' : 'whole pickled module'} ${primary.className}`;
    evidence.push(`${container} ${where} with ${keys.length} ${keys.length === 1 ? 'key' : 'keys'}`);
  }
  if (prefixes.length) evidence.push(`every key starts with ${prefixes.map((p) => `'${p}'`).join(' then ')}`);
  evidence.push(`weights on ${tags.map((t) => `${t} (${deciding[t]})`).join(', ') || 'no device'}`);

  let kind: LayoutKind;
  const hasModulePrefix = prefixes.includes('module.');
  const rank = input.familyRank ?? rankFromName(input.fileName);
  if (tags.length > 1) {
    kind = 'mixed';
    evidence.push('weights are spread over more than one device');
  } else if (hasModulePrefix) {
    const only = tags[0] ?? 'cpu';
    const idx = only.startsWith('cuda:') ? Number(only.slice(5)) : 0;
    if (input.familyRank !== undefined) {
      kind = 'ddp';
      evidence.push(`one of a family of per-rank files (rank ${input.familyRank})`);
    } else if (idx > 0) {
      kind = 'ddp';
      evidence.push(`'module.' keys on ${only}: DataParallel keeps weights on device_ids[0], so a non-zero GPU means a DDP rank`);
    } else if (rank !== null) {
      kind = 'ddp';
      evidence.push(`the file name names rank ${rank}`);
    } else {
      kind = 'dp';
      evidence.push(`'module.' keys on one device (${only}): saved from a DataParallel/DDP wrapper; a DDP rank-0 file looks the same`);
    }
  } else if (tags.length === 1 && tags[0] !== 'cpu') {
    kind = 'single-gpu';
  } else {
    kind = 'cpu';
  }
  return { kind, prefixes, devices, evidence };
}
