/**
 * The machine's NVIDIA GPUs, their interconnect, and the device plan for a checkpoint.
 * Serialisable types shared by the main process, the CLI (`ckpt devices --json`) and the UI.
 * No Node, no DOM: the renderer imports this file.
 */

/** One GPU as `nvidia-smi --query-gpu` reports it. Numbers are null where nvidia-smi said N/A. */
export interface GpuInfo {
  /** nvidia-smi's index (PCI bus order); the `GPUn` of `nvidia-smi topo -m`. */
  index: number;
  uuid: string | null;
  name: string | null;
  pciBusId: string | null;
  memoryTotalMiB: number | null;
  memoryUsedMiB: number | null;
  memoryFreeMiB: number | null;
  utilizationPct: number | null;
  temperatureC: number | null;
  powerDrawW: number | null;
  powerLimitW: number | null;
  driverVersion: string | null;
  /** 'Enabled' / 'Disabled' when known (MIG-capable GPUs), else null. */
  migMode: string | null;
  /** MIG instances on this GPU, from the default `nvidia-smi` table. */
  migDevices: MigDevice[];
}

export interface MigDevice {
  gpuIndex: number;
  gpuInstanceId: number;
  computeInstanceId: number;
  /** The MIG device number shown in the `MIG Dev` column. */
  migIndex: number;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  /** Streaming multiprocessors in this instance, when printed. */
  sm: number | null;
}

/** A process holding GPU memory (`--query-compute-apps`, or the table's Processes section). */
export interface ComputeApp {
  gpuUuid: string | null;
  /** Resolved from gpuUuid against the GPU list; null when unknown. */
  gpuIndex: number | null;
  pid: number;
  processName: string;
  usedMemoryMiB: number | null;
}

/** Connection kinds of `nvidia-smi topo -m`. SOC (old drivers) is read as SYS. */
export type LinkType = 'X' | 'NV' | 'PIX' | 'PXB' | 'PHB' | 'NODE' | 'SYS' | 'unknown';

/** The link between two GPUs, by nvidia-smi index (a < b). */
export interface TopologyLink {
  a: number;
  b: number;
  type: LinkType;
  /** Bonded NVLinks for type 'NV' (NV12 -> 12), else 0. */
  nvlinks: number;
  /** The cell as printed: 'NV12', 'PXB', 'SOC'. */
  label: string;
  /** Higher is better for collective communication (see linkRank). */
  rank: number;
  /** Plain-language meaning, from nvidia-smi's own legend. */
  meaning: string;
}

export interface LegendEntry {
  code: string;
  meaning: string;
}

/** A non-GPU device of the matrix: a NIC ('NIC0' with its legend name, or old-style 'mlx5_0'). */
export interface TopologyNic {
  label: string;
  /** Device name from the NIC Legend (NIC0 -> mlx5_0); the label itself for old-style rows. */
  device: string;
  /** The NIC's connection to each GPU, by nvidia-smi index. */
  gpus: { gpu: number; type: LinkType; label: string }[];
}

export interface GpuAffinity {
  gpu: number;
  /** As printed, e.g. '0-19,80-99'; null when the cell was empty or N/A. */
  cpuAffinity: string | null;
  numaAffinity: string | null;
  gpuNumaId: string | null;
}

/** `nvidia-smi topo -m`, parsed. */
export interface Topology {
  /** GPU indices in matrix order. */
  gpus: number[];
  links: TopologyLink[];
  nics: TopologyNic[];
  affinity: GpuAffinity[];
  /** The legend as printed (or nvidia-smi's standard text when the capture had none). */
  legend: LegendEntry[];
  /** NIC Legend: NIC0 -> mlx5_0. */
  nicLegend: { nic: string; device: string }[];
  /** The matrix itself, cell by cell, for display: header labels and one row per device. */
  matrix: { columns: string[]; rows: { label: string; cells: string[] }[] };
}

/** One device CUDA will number: `cuda:ordinal`. */
export interface VisibleDevice {
  ordinal: number;
  /** nvidia-smi index of the physical GPU; null for a MIG instance we cannot place. */
  physicalIndex: number | null;
  uuid: string | null;
  name: string | null;
  /** Set when the entry is a MIG instance (`MIG-...`). */
  mig: boolean;
}

export interface VisibleDevices {
  /** CUDA_VISIBLE_DEVICES as found; null when unset. */
  cudaVisibleDevices: string | null;
  /** CUDA_DEVICE_ORDER as found; null when unset (CUDA then numbers FASTEST_FIRST). */
  cudaDeviceOrder: string | null;
  devices: VisibleDevice[];
  /** One line: what CUDA will see and why. */
  note: string;
  /** Things that can make CUDA's numbering differ from this mapping. */
  warnings: string[];
}

export type DeviceStatus = 'ok' | 'no-nvidia-smi' | 'error';

/** Why the reading is what it is; `message` says it in words. */
export type DeviceReason =
  | 'ok'
  | 'no-devices' // nvidia-smi ran: "No devices were found"
  | 'no-nvidia-smi' // not on PATH: a CPU-only machine
  | 'timeout'
  | 'driver-library-mismatch'
  | 'driver-unreachable'
  | 'device-handle' // "Unable to determine the device handle for GPU..."
  | 'nvml-init' // other "Failed to initialize NVML: ..."
  | 'exit-nonzero'
  | 'unparseable'
  | 'spawn-failed'
  | 'cancelled';

export interface DeviceReading {
  status: DeviceStatus;
  reason: DeviceReason;
  /** One line for the user. */
  message: string;
  gpus: GpuInfo[];
  computeApps: ComputeApp[];
  /** Every pair of GPUs (a < b), by nvidia-smi index; empty without a topology. */
  links: TopologyLink[];
  topology: Topology | null;
  /** The topology legend: as nvidia-smi printed it, or its standard text; [] without a topology. */
  legend: LegendEntry[];
  visible: VisibleDevices;
  driverVersion: string | null;
  /** Highest CUDA version the driver supports, from the table header. */
  cudaVersion: string | null;
  /** Secondary problems: a sub-command failed, a line could not be read. */
  warnings: string[];
  /** process.platform / process.arch of the machine read (MPS needs darwin/arm64). */
  platform: string;
  arch: string;
  /** ISO time of the reading. */
  readAt: string;
}

/** A one-click fix a Convert view can apply. When both are set they describe the same move. */
export interface DeviceFix {
  /** 'cpu' or 'gpu:K'. */
  preset?: string;
  /** Source tag -> target tag, e.g. { 'cuda:3': 'cuda:0' }. */
  remap?: Record<string, string>;
  line: string;
}

export interface DeviceTagPlan {
  tag: string;
  tensors: number;
  /** 'cpu', 'cuda', 'mps', 'meta', ... */
  backend: string;
  index: number | null;
  /** Will `torch.load` without map_location restore this tag here? null: cannot tell. */
  loads: boolean | null;
  /** What torch.load would raise (or why we cannot tell); null when it loads. */
  reason: string | null;
  /** Where the tensors land when they load, e.g. 'GPU 5 (NVIDIA A100-SXM4-40GB)'. */
  lands: string | null;
  fix: DeviceFix | null;
}

export interface DdpRank {
  rank: number;
  /** cuda:K as the rank's process would see it before any re-restriction. */
  device: string;
  visibleOrdinal: number;
  physicalIndex: number | null;
}

export interface DdpPlacement {
  worldSize: number;
  feasible: boolean;
  ranks: DdpRank[];
  /** The weakest link among the chosen GPUs. */
  worstLink: { a: number; b: number; label: string; type: LinkType } | null;
  /** CUDA_VISIBLE_DEVICES to export so that rank r uses cuda:r on the chosen GPUs. */
  cudaVisibleDevices: string | null;
  line: string;
}

export interface DevicePlan {
  /** What the tags were compared against, in one line. */
  machine: string;
  /** True when every tag loads, false when one fails, null when one cannot be told. */
  loadsAsIs: boolean | null;
  tags: DeviceTagPlan[];
  /** All per-tag fixes merged; null when nothing needs fixing. */
  fix: DeviceFix | null;
  ddp: DdpPlacement | null;
  summary: string;
}

/** nvidia-smi's legend text, for captures that omit it. `#` is the NVLink count. */
export const LINK_MEANINGS: Readonly<Record<Exclude<LinkType, 'unknown'>, string>> = {
  X: 'Self',
  SYS: 'Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)',
  NODE: 'Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node',
  PHB: 'Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)',
  PXB: 'Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)',
  PIX: 'Connection traversing at most a single PCIe bridge',
  NV: 'Connection traversing a bonded set of # NVLinks',
};

/** Legend codes in nvidia-smi's order; NV is printed as 'NV#'. */
export const LEGEND_ORDER: readonly Exclude<LinkType, 'unknown'>[] = ['X', 'SYS', 'NODE', 'PHB', 'PXB', 'PIX', 'NV'];

/**
 * Rank of a link for placing DDP ranks: higher is better. NVLink beats any PCIe path and more
 * bonded links beat fewer; then PIX > PXB > PHB > NODE > SYS. X (self) is above everything.
 */
export function linkRank(type: LinkType, nvlinks = 0): number {
  switch (type) {
    case 'X':
      return 1000;
    case 'NV':
      return 100 + Math.max(0, nvlinks);
    case 'PIX':
      return 50;
    case 'PXB':
      return 40;
    case 'PHB':
      return 30;
    case 'NODE':
      return 20;
    case 'SYS':
      return 10;
    default:
      return 0;
  }
}

/** The plain-language meaning of one link, with the NVLink count filled in. */
export function linkMeaning(type: LinkType, nvlinks = 0, legend?: readonly LegendEntry[]): string {
  if (type === 'unknown') return 'Connection of a kind nvidia-smi did not explain';
  const code = type === 'NV' ? 'NV#' : type;
  const text = legend?.find((e) => e.code === code)?.meaning ?? LINK_MEANINGS[type];
  if (type !== 'NV') return text;
  return text.replace('#', String(nvlinks)).replace(/\b1 NVLinks\b/, '1 NVLink');
}
