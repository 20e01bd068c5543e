/**
 * CUDA_VISIBLE_DEVICES: which GPUs a CUDA process sees and in what order, so that `cuda:1`
 * in a checkpoint can be traced to a physical GPU. The rules follow PyTorch's emulation of
 * CUDA's parser (torch/cuda/__init__.py: _parse_visible_devices, _transform_uuid_to_ordinals,
 * _device_count_nvml):
 * - unset: every GPU; empty: none;
 * - a list of ordinals read like strtoul ('1gpu2' is 1); a negative or unreadable entry ends
 *   the list; an ordinal past the last GPU ends it too; a repeated one makes the list empty;
 * - 'GPU-' UUIDs, each a unique prefix of a GPU's UUID; an unknown or ambiguous one ends the
 *   list, a repeat empties it; entries without the prefix end it;
 * - 'MIG-' UUIDs name MIG instances, which nvidia-smi's query output cannot place on a GPU.
 */
import type { VisibleDevice, VisibleDevices } from '../../shared/devices.ts';

export interface PhysicalGpu {
  index: number;
  uuid: string | null;
  name: string | null;
  migMode?: string | null;
}

export type VisibleSpec =
  | { kind: 'all' }
  | { kind: 'ordinals'; ordinals: number[]; stoppedAt: string | null }
  | { kind: 'uuids'; prefix: 'GPU-' | 'MIG-'; ids: string[]; stoppedAt: string | null }
  | { kind: 'repeated'; entry: string };

/** Leading integer like C's strtoul; -1 when there is none or it is negative. */
function strtoul(s: string): number {
  const m = /^[+-]?\d+/.exec(s);
  return m ? Number(m[0]) : -1;
}

export function parseCudaVisibleDevices(value: string | null | undefined): VisibleSpec {
  if (value === undefined || value === null) return { kind: 'all' };
  for (const prefix of ['GPU-', 'MIG-'] as const) {
    if (!value.startsWith(prefix)) continue;
    const ids: string[] = [];
    for (const elem of value.split(',')) {
      if (ids.includes(elem)) return { kind: 'repeated', entry: elem };
      if (!elem.startsWith(prefix)) return { kind: 'uuids', prefix, ids, stoppedAt: elem };
      ids.push(elem);
    }
    return { kind: 'uuids', prefix, ids, stoppedAt: null };
  }
  const ordinals: number[] = [];
  for (const elem of value.split(',')) {
    const x = strtoul(elem.trim());
    if (x >= 0 && ordinals.includes(x)) return { kind: 'repeated', entry: elem.trim() };
    if (x < 0) return { kind: 'ordinals', ordinals, stoppedAt: elem.trim() };
    ordinals.push(x);
  }
  return { kind: 'ordinals', ordinals, stoppedAt: null };
}

function describe(d: VisibleDevice): string {
  if (d.physicalIndex === null) return `cuda:${d.ordinal} is MIG instance ${d.uuid}`;
  return `cuda:${d.ordinal} is GPU ${d.physicalIndex}`;
}

/**
 * Maps visible ordinals to nvidia-smi's GPUs. `gpus` is nvidia-smi's list (PCI bus order).
 */
export function resolveVisibleDevices(
  gpus: readonly PhysicalGpu[],
  env: { CUDA_VISIBLE_DEVICES?: string | undefined; CUDA_DEVICE_ORDER?: string | undefined },
): VisibleDevices {
  const raw = env.CUDA_VISIBLE_DEVICES ?? null;
  const order = env.CUDA_DEVICE_ORDER ?? null;
  const sorted = [...gpus].sort((a, b) => a.index - b.index);
  const spec = parseCudaVisibleDevices(raw);
  const warnings: string[] = [];
  const devices: VisibleDevice[] = [];
  const add = (g: PhysicalGpu): void => {
    devices.push({ ordinal: devices.length, physicalIndex: g.index, uuid: g.uuid, name: g.name, mig: false });
  };
  const quoted = raw === null ? '' : `CUDA_VISIBLE_DEVICES=${raw}`;
  let stopped: string | null = null;

  if (spec.kind === 'all') sorted.forEach(add);
  else if (spec.kind === 'repeated') warnings.push(`${quoted} names '${spec.entry}' twice, and CUDA then sees no device at all.`);
  else if (spec.kind === 'ordinals') {
    for (const o of spec.ordinals) {
      const g = sorted[o];
      if (!g) {
        stopped = String(o);
        break;
      }
      add(g);
    }
    stopped ??= spec.stoppedAt;
  } else if (spec.prefix === 'MIG-') {
    spec.ids.forEach((id) => devices.push({ ordinal: devices.length, physicalIndex: null, uuid: id, name: 'MIG instance', mig: true }));
    stopped = spec.stoppedAt;
    if (devices.length) warnings.push("MIG instances are listed by UUID; nvidia-smi's query output does not say which GPU each belongs to.");
  } else {
    const seen = new Set<number>();
    for (const id of spec.ids) {
      const matches = sorted.filter((g) => g.uuid !== null && g.uuid.toLowerCase().startsWith(id.toLowerCase()));
      if (matches.length !== 1) {
        stopped = matches.length > 1 ? `${id} (matches ${matches.length} GPUs)` : id;
        break;
      }
      if (seen.has(matches[0]!.index)) {
        warnings.push(`${quoted} names GPU ${matches[0]!.index} twice, and CUDA then sees no device at all.`);
        devices.length = 0;
        break;
      }
      seen.add(matches[0]!.index);
      add(matches[0]!);
    }
    stopped ??= spec.stoppedAt;
  }
  if (stopped !== null && raw !== null && raw.trim() !== '') {
    warnings.push(`${quoted}: '${stopped}' is not a usable GPU here, so CUDA ignores it and everything after it.`);
  }

  const names = new Set(sorted.map((g) => g.name));
  if (order !== 'PCI_BUS_ID' && names.size > 1) {
    warnings.push(
      "This machine mixes GPU models and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA numbers the fastest GPU first and its ordinals may differ from nvidia-smi's; set CUDA_DEVICE_ORDER=PCI_BUS_ID to make them agree.",
    );
  }
  const migOn = devices.filter((d) => sorted.find((g) => g.index === d.physicalIndex)?.migMode === 'Enabled');
  if (migOn.length) {
    warnings.push(`MIG is enabled on GPU ${migOn.map((d) => d.physicalIndex).join(', ')}: CUDA sees its MIG instances, not the whole GPU.`);
  }

  let note: string;
  if (raw === null) {
    note =
      sorted.length > 1
        ? `CUDA_VISIBLE_DEVICES is not set: CUDA sees all ${sorted.length} GPUs, cuda:K is GPU K.`
        : sorted.length === 1
          ? `CUDA_VISIBLE_DEVICES is not set: CUDA sees the one GPU as cuda:0.`
          : 'CUDA_VISIBLE_DEVICES is not set, and there is no GPU to see.';
  } else if (raw.trim() === '') {
    note = 'CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU.';
  } else if (!devices.length) {
    note = `${quoted}: CUDA sees no GPU.`;
  } else {
    note = `${quoted}: ${devices.map(describe).join(', ')}.`;
  }
  return { cudaVisibleDevices: raw, cudaDeviceOrder: order, devices, note, warnings };
}
