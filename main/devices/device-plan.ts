/**
 * The device plan for a checkpoint: for each device tag its tensors carry ('cpu', 'cuda:3',
 * 'mps', ...), whether `torch.load(f)` with no map_location restores it on this machine, the
 * error torch would raise if not, and a fix a Convert view can apply in one click. Also the
 * rank -> GPU placement for the DDP preset, from the topology ranking.
 *
 * torch.load's rules are those of torch/serialization.py: default_restore_location tries the
 * registered deserialisers; 'cpu' and 'meta' always restore; 'cuda[:i]' goes through
 * _validate_device (is_available, then index < device_count, with 'cuda' meaning device 0);
 * 'mps' calls storage.mps(), which needs an Apple-silicon Mac; other backends need their module.
 */
import {
  linkMeaning,
  type DdpPlacement,
  type DeviceFix,
  type DevicePlan,
  type DeviceReading,
  type DeviceTagPlan,
  type TopologyLink,
  type VisibleDevice,
} from '../../shared/devices.ts';

export interface PlanOptions {
  /** When set, also place this many DDP ranks on the best-connected GPUs. */
  ddpWorldSize?: number;
}

type CudaState = 'available' | 'none' | 'unknown';

/** Whether CUDA works here, as far as the reading can tell. */
function cudaState(reading: DeviceReading): CudaState {
  if (reading.status === 'ok') return reading.visible.devices.length ? 'available' : 'none';
  if (reading.status === 'no-nvidia-smi') return 'none';
  // These say the driver is unusable, so torch.cuda.is_available() is False as well.
  if (reading.reason === 'driver-unreachable' || reading.reason === 'driver-library-mismatch' || reading.reason === 'nvml-init') return 'none';
  return 'unknown';
}

function parseTag(tag: string): { backend: string; index: number | null } | null {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::(\d+))?$/.exec(tag.trim());
  return m ? { backend: m[1]!.toLowerCase(), index: m[2] === undefined ? null : Number(m[2]) } : null;
}

const CPU_FIX_LINE = "Load on the CPU (map_location='cpu'), which works on every machine";

function cpuOnlyReason(): string {
  return "Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False. If you are running on a CPU-only machine, please use torch.load with map_location=torch.device('cpu') to map your storages to the CPU.";
}

function gpuName(reading: DeviceReading, d: VisibleDevice): string {
  if (d.physicalIndex === null) return d.uuid ?? 'MIG instance';
  const name = reading.gpus.find((g) => g.index === d.physicalIndex)?.name;
  return `GPU ${d.physicalIndex}${name ? ` (${name})` : ''}`;
}

function sortTags(tags: string[]): string[] {
  return [...tags].sort((a, b) => {
    const pa = parseTag(a);
    const pb = parseTag(b);
    if (!pa || !pb) return a.localeCompare(b);
    return pa.backend.localeCompare(pb.backend) || (pa.index ?? -1) - (pb.index ?? -1);
  });
}

/** The device plan for a checkpoint's `{ tag: tensorCount }` on the machine `reading` describes. */
export function planDevices(deviceCounts: Record<string, number>, reading: DeviceReading, opts: PlanOptions = {}): DevicePlan {
  const state = cudaState(reading);
  const visible = reading.visible.devices;
  const count = visible.length;
  const tags = sortTags(Object.keys(deviceCounts));

  // Ordinals the checkpoint already uses validly stay; invalid ones move to unused ordinals first.
  const validOrdinals = new Set<number>();
  for (const t of tags) {
    const p = parseTag(t);
    if (p?.backend === 'cuda' && (p.index ?? 0) < count) validOrdinals.add(p.index ?? 0);
  }
  const free = visible.map((d) => d.ordinal).filter((o) => !validOrdinals.has(o));
  let wrap = 0;
  const nextOrdinal = (): number => free.shift() ?? wrap++ % Math.max(1, count);

  const plans: DeviceTagPlan[] = tags.map((tag): DeviceTagPlan => {
    const tensors = deviceCounts[tag] ?? 0;
    const p = parseTag(tag);
    const base = { tag, tensors, backend: p?.backend ?? tag, index: p?.index ?? null };
    const toCpu: DeviceFix = { remap: { [tag]: 'cpu' }, line: `${tag} → cpu` };
    if (!p) {
      return {
        ...base,
        loads: false,
        reason: `don't know how to restore data location of torch.storage.UntypedStorage (tagged with ${tag})`,
        lands: null,
        fix: toCpu,
      };
    }
    if (p.backend === 'cpu') return { ...base, loads: true, reason: null, lands: 'CPU', fix: null };
    if (p.backend === 'meta') return { ...base, loads: true, reason: null, lands: 'meta (shapes only, no data)', fix: null };
    if (p.backend === 'cuda') {
      const i = p.index ?? 0;
      if (state === 'none') {
        // CUDA_VISIBLE_DEVICES hiding the GPUs is worth saying per tag; a machine without nvidia-smi
        // is said once, in `machine`, not again on every tag (the Devices view showed it three times)
        const reason = reading.status === 'ok' ? `${cpuOnlyReason()} (${reading.visible.note})` : cpuOnlyReason();
        return { ...base, loads: false, reason, lands: null, fix: { preset: 'cpu', line: CPU_FIX_LINE } };
      }
      if (state === 'unknown') {
        return {
          ...base,
          loads: null,
          reason: `Cannot tell whether ${tag} exists here: ${reading.message}`,
          lands: null,
          fix: { preset: 'cpu', line: CPU_FIX_LINE },
        };
      }
      if (i < count) return { ...base, loads: true, reason: null, lands: `cuda:${i} = ${gpuName(reading, visible[i]!)}`, fix: null };
      const target = nextOrdinal();
      return {
        ...base,
        loads: false,
        reason: `Attempting to deserialize object on CUDA device ${i} but torch.cuda.device_count() is ${count}. Please use torch.load with map_location to map your storages to an existing device. (CUDA: invalid device ordinal)`,
        lands: null,
        fix: { remap: { [tag]: `cuda:${target}` }, line: `${tag} → cuda:${target} = ${gpuName(reading, visible[target]!)}` },
      };
    }
    if (p.backend === 'mps') {
      if (reading.platform === 'darwin' && reading.arch === 'arm64') return { ...base, loads: true, reason: null, lands: 'MPS (Apple GPU)', fix: null };
      return {
        ...base,
        loads: false,
        reason: `torch.load restores '${tag}' with storage.mps(), and MPS exists only on Apple-silicon Macs, not on this ${reading.platform}/${reading.arch} machine.`,
        lands: null,
        fix: toCpu,
      };
    }
    return {
      ...base,
      loads: null,
      reason: `This app reads NVIDIA GPUs only; unless this machine has a working ${p.backend.toUpperCase()} backend, torch.load raises "Attempting to deserialize object on a ${p.backend.toUpperCase()} device but torch.${p.backend}.is_available() is False".`,
      lands: null,
      fix: toCpu,
    };
  });

  const needing = plans.filter((t) => t.loads !== true);
  const loadsAsIs = plans.some((t) => t.loads === false) ? false : plans.some((t) => t.loads === null) ? null : true;
  let fix: DeviceFix | null = null;
  if (needing.length) {
    if (needing.some((t) => t.fix?.preset === 'cpu')) {
      fix = { preset: 'cpu', line: `${CPU_FIX_LINE}: ${state === 'none' ? 'CUDA is not available here' : 'the GPUs could not be read'}.` };
    } else {
      const remap: Record<string, string> = {};
      for (const t of needing) Object.assign(remap, t.fix?.remap);
      const targets = new Set(Object.values(remap));
      const toGpu = [...targets].some((t) => t.startsWith('cuda:'));
      const seen = toGpu ? ` (CUDA sees ${count} GPU${count === 1 ? '' : 's'} here: ${visible.map((d) => `cuda:${d.ordinal}`).join(', ')})` : '';
      fix = {
        remap,
        line: `Remap ${Object.entries(remap)
          .map(([a, b]) => `${a} → ${b}`)
          .join(', ')}${seen}.`,
      };
      // A checkpoint on one device moved to one GPU is exactly what the gpu:K preset does.
      const only = [...targets][0];
      if (tags.length === 1 && targets.size === 1 && only?.startsWith('cuda:')) fix.preset = `gpu:${only.slice(5)}`;
    }
  }

  const machine = describeMachine(reading, state);
  const total = plans.reduce((s, t) => s + t.tensors, 0);
  let summary: string;
  if (loadsAsIs === true)
    summary = `${total === 1 ? 'The 1 tensor loads' : `All ${total} tensors load`} as saved: ${plans.map((t) => `${t.tag} → ${t.lands}`).join('; ')}.`;
  else {
    const bad = needing.map((t) => `${t.tag} (${t.tensors} tensor${t.tensors === 1 ? '' : 's'})`).join(', ');
    summary = `${bad} ${loadsAsIs === false ? 'will not load' : 'may not load'} here as saved. Fix: ${fix?.line ?? 'none'}`;
  }
  const ddp = opts.ddpWorldSize !== undefined ? planDdp(reading, opts.ddpWorldSize) : null;
  return { machine, loadsAsIs, tags: plans, fix, ddp, summary };
}

function describeMachine(reading: DeviceReading, state: CudaState): string {
  if (state === 'available') {
    const n = reading.visible.devices.length;
    return `${n} CUDA device${n === 1 ? '' : 's'} visible: ${reading.visible.devices.map((d) => `cuda:${d.ordinal} = ${gpuName(reading, d)}`).join(', ')}.`;
  }
  if (state === 'none') return `No CUDA device: ${reading.status === 'ok' ? reading.visible.note : reading.message}`;
  return `GPUs unknown: ${reading.message}`;
}

function linkBetween(links: readonly TopologyLink[], a: number | null, b: number | null): TopologyLink | null {
  if (a === null || b === null) return null;
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return links.find((l) => l.a === lo && l.b === hi) ?? null;
}

interface Scored {
  devices: VisibleDevice[];
  worst: TopologyLink | null;
  min: number;
  sum: number;
  numaNodes: number;
}

function score(devices: VisibleDevice[], reading: DeviceReading): Scored {
  let worst: TopologyLink | null = null;
  let min = Infinity;
  let sum = 0;
  for (let x = 0; x < devices.length; x++) {
    for (let y = x + 1; y < devices.length; y++) {
      const l = linkBetween(reading.links, devices[x]!.physicalIndex, devices[y]!.physicalIndex);
      const r = l?.rank ?? 0;
      sum += r;
      if (r < min) {
        min = r;
        worst = l;
      }
    }
  }
  const numa = new Set(devices.map((d) => reading.topology?.affinity.find((a) => a.gpu === d.physicalIndex)?.numaAffinity ?? null));
  return { devices, worst, min: devices.length > 1 ? min : Infinity, sum, numaNodes: numa.size };
}

function better(p: Scored, q: Scored): boolean {
  if (p.min !== q.min) return p.min > q.min;
  if (p.sum !== q.sum) return p.sum > q.sum;
  if (p.numaNodes !== q.numaNodes) return p.numaNodes < q.numaNodes;
  return false; // keep the earlier (lower ordinals) on a tie
}

function* combinations<T>(items: readonly T[], k: number, start = 0, prefix: T[] = []): Generator<T[]> {
  if (prefix.length === k) {
    yield prefix;
    return;
  }
  for (let i = start; i <= items.length - (k - prefix.length); i++) yield* combinations(items, k, i + 1, [...prefix, items[i]!]);
}

function choose(n: number, k: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1);
  return c;
}

/**
 * Places `worldSize` DDP ranks on the visible GPUs whose weakest pairwise link is best
 * (then the best total, then the fewest NUMA nodes, then the lowest ordinals).
 */
export function planDdp(reading: DeviceReading, worldSize: number): DdpPlacement {
  const visible = reading.visible.devices;
  const none = (line: string): DdpPlacement => ({ worldSize, feasible: false, ranks: [], worstLink: null, cudaVisibleDevices: null, line });
  if (!Number.isInteger(worldSize) || worldSize < 1) return none(`World size must be a whole number of at least 1, not ${worldSize}.`);
  if (!visible.length)
    return none(`No CUDA device is visible here, so ${worldSize} DDP rank${worldSize === 1 ? '' : 's'} cannot each have a GPU (the gloo backend runs on CPU).`);
  if (worldSize > visible.length) return none(`World size ${worldSize} needs ${worldSize} GPUs; CUDA sees ${visible.length} here.`);

  let best: Scored;
  if (choose(visible.length, worldSize) <= 100_000) {
    best = score(visible.slice(0, worldSize), reading);
    for (const combo of combinations(visible, worldSize)) {
      const s = score(combo, reading);
      if (better(s, best)) best = s;
    }
  } else {
    // Too many subsets to try: grow greedily from the first device, always adding the best-linked one.
    const chosen = [visible[0]!];
    while (chosen.length < worldSize) {
      const rest = visible.filter((d) => !chosen.includes(d));
      let pick = rest[0]!;
      let pickScore = score([...chosen, pick], reading);
      for (const d of rest.slice(1)) {
        const s = score([...chosen, d], reading);
        if (better(s, pickScore)) {
          pick = d;
          pickScore = s;
        }
      }
      chosen.push(pick);
    }
    best = score(
      chosen.sort((a, b) => a.ordinal - b.ordinal),
      reading,
    );
  }

  const ranks = best.devices.map((d, rank) => ({ rank, device: `cuda:${d.ordinal}`, visibleOrdinal: d.ordinal, physicalIndex: d.physicalIndex }));
  const physical = best.devices.map((d) => d.physicalIndex);
  const cudaVisibleDevices = physical.every((p) => p !== null) ? physical.join(',') : null;
  const named = best.devices.map((d) => (d.physicalIndex === null ? `cuda:${d.ordinal}` : String(d.physicalIndex)));
  const where = worldSize === 1 ? `Rank 0 on GPU ${named[0]}` : `Ranks 0-${worldSize - 1} on GPUs ${named.join(', ')}`;
  const explain = (l: TopologyLink): string =>
    `${l.label}, traversing ${linkMeaning(l.type, l.nvlinks, reading.legend).replace(/^Connection traversing /, '')}`;
  let line: string;
  if (worldSize === 1) line = `${where}.`;
  else if (!reading.links.length || !best.worst) line = `${where}: the topology is unknown, so the first ${worldSize} visible devices are used.`;
  else {
    const w = best.worst;
    const node = reading.topology?.affinity.find((a) => a.gpu === best.devices[0]!.physicalIndex)?.numaAffinity;
    const numa = best.numaNodes === 1 && node ? `; all on NUMA node ${node}` : '';
    const allPairs = best.sum === (w.rank * worldSize * (worldSize - 1)) / 2;
    line = `${where}: ${allPairs ? 'every pair is' : 'the weakest pair is'} ${explain(w)}${numa}`;
    const whole = score(visible, reading);
    if (whole.worst && whole.min < best.min) line += `; this avoids ${explain(whole.worst)}`;
    line += '.';
  }
  return {
    worstLink: best.worst ? { a: best.worst.a, b: best.worst.b, label: best.worst.label, type: best.worst.type } : null,
    worldSize,
    feasible: true,
    ranks,
    cudaVisibleDevices,
    line,
  };
}
