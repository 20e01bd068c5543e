/**
 * Reads the machine: runs nvidia-smi (query-gpu first; then compute-apps, topo -m and the
 * default table side by side) and turns the outputs into one DeviceReading. `buildReading`
 * is the pure half, used by readDevices and by tests on captured outputs.
 */
import type { ComputeApp, DeviceReading, GpuInfo, Topology } from '../../shared/devices.ts';
import { parseComputeApps, parseQueryGpu, QUERY_APPS_ARGS, QUERY_GPU_ARGS } from './parse-query.ts';
import { parseSmiTable, TABLE_ARGS } from './parse-table.ts';
import { parseTopology, TOPO_ARGS } from './parse-topology.ts';
import { DEFAULT_TIMEOUT_MS, runNvidiaSmi, type RunOptions, type SmiRun } from './run-nvidia-smi.ts';
import { exitState, recogniseSmiFailure, type SmiState } from './smi-errors.ts';
import { firstLine } from './text.ts';
import { resolveVisibleDevices } from './visible-devices.ts';

/** Outputs of the four nvidia-smi commands, as text; any may be missing. */
export interface SmiCaptures {
  queryGpu?: string | undefined;
  computeApps?: string | undefined;
  topo?: string | undefined;
  table?: string | undefined;
}

export interface BuildOptions {
  /** Where CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER come from; default process.env. */
  env?: Record<string, string | undefined>;
  platform?: string;
  arch?: string;
  warnings?: string[];
  now?: Date;
}

export type ReadOptions = RunOptions & Omit<BuildOptions, 'warnings'>;

function emptyGpu(index: number): GpuInfo {
  return {
    index,
    uuid: null,
    name: null,
    pciBusId: null,
    memoryTotalMiB: null,
    memoryUsedMiB: null,
    memoryFreeMiB: null,
    utilizationPct: null,
    temperatureC: null,
    powerDrawW: null,
    powerLimitW: null,
    driverVersion: null,
    migMode: null,
    migDevices: [],
  };
}

/** A reading with no GPU list: nvidia-smi missing, failing, or silent. */
export function stateReading(state: SmiState, opts: BuildOptions = {}): DeviceReading {
  const env = opts.env ?? process.env;
  return {
    status: state.status,
    reason: state.reason,
    message: state.message,
    gpus: [],
    computeApps: [],
    links: [],
    topology: null,
    legend: [],
    visible: resolveVisibleDevices([], env),
    driverVersion: null,
    cudaVersion: null,
    warnings: opts.warnings ?? [],
    platform: opts.platform ?? process.platform,
    arch: opts.arch ?? process.arch,
    readAt: (opts.now ?? new Date()).toISOString(),
  };
}

function countNames(gpus: GpuInfo[]): string {
  const counts = new Map<string, number>();
  for (const g of gpus) counts.set(g.name ?? 'unnamed GPU', (counts.get(g.name ?? 'unnamed GPU') ?? 0) + 1);
  return [...counts].map(([n, c]) => (c > 1 ? `${c}× ${n}` : n)).join(', ');
}

/** Builds a reading from captured nvidia-smi outputs. */
export function buildReading(c: SmiCaptures, opts: BuildOptions = {}): DeviceReading {
  const env = opts.env ?? process.env;
  const warnings = [...(opts.warnings ?? [])];
  const table = c.table !== undefined ? parseSmiTable(c.table) : null;
  if (c.table !== undefined && !table && c.table.trim()) warnings.push(`nvidia-smi (table) printed something unreadable: ${firstLine(c.table)}`);
  const topology: Topology | null = c.topo !== undefined ? parseTopology(c.topo) : null;
  if (c.topo !== undefined && !topology && c.topo.trim()) {
    warnings.push(`nvidia-smi topo -m: ${recogniseSmiFailure(c.topo)?.message ?? `unreadable output: ${firstLine(c.topo)}`}`);
  }

  let gpus: GpuInfo[];
  if (c.queryGpu !== undefined) {
    const q = parseQueryGpu(c.queryGpu);
    if (!q.gpus.length) {
      if (!q.problems.length)
        return stateReading({ status: 'ok', reason: 'no-devices', message: 'nvidia-smi listed no GPU; CUDA will see no device.' }, { ...opts, warnings });
      const known = recogniseSmiFailure(q.problems.join('\n'));
      return stateReading(
        known ?? {
          status: 'error',
          reason: 'unparseable',
          message: `nvidia-smi printed something this app cannot read: "${firstLine(q.problems.join('\n'), 80)}".`,
        },
        { ...opts, warnings },
      );
    }
    for (const p of q.problems) warnings.push(`nvidia-smi: ${recogniseSmiFailure(p)?.message ?? p}`);
    gpus = q.gpus;
  } else if (table?.gpus.length) {
    gpus = table.gpus.map((t) => emptyGpu(t.index));
  } else {
    gpus = (topology?.gpus ?? []).map(emptyGpu);
  }

  // The table fills what the query has not got: MIG mode and instances, and truncated-name fallbacks.
  for (const g of gpus) {
    const t = table?.gpus.find((x) => x.index === g.index);
    if (t) {
      g.name ??= t.name;
      g.pciBusId ??= t.pciBusId;
      g.memoryTotalMiB ??= t.memoryTotalMiB;
      g.memoryUsedMiB ??= t.memoryUsedMiB;
      g.utilizationPct ??= t.utilizationPct;
      g.temperatureC ??= t.temperatureC;
      g.powerDrawW ??= t.powerDrawW;
      g.powerLimitW ??= t.powerLimitW;
      g.migMode ??= t.migMode;
    }
    g.migDevices = (table?.migDevices ?? []).filter((m) => m.gpuIndex === g.index);
    g.driverVersion ??= table?.driverVersion ?? null;
  }
  if (topology) {
    const known = new Set(gpus.map((g) => g.index));
    const extra = topology.gpus.filter((i) => !known.has(i));
    if (extra.length) warnings.push(`nvidia-smi topo -m shows GPU ${extra.join(', ')}, which the GPU list lacks.`);
  }

  let computeApps: ComputeApp[] = [];
  if (c.computeApps !== undefined) {
    const a = parseComputeApps(c.computeApps);
    computeApps = a.apps;
    for (const p of a.problems) warnings.push(`nvidia-smi --query-compute-apps: ${recogniseSmiFailure(p)?.message ?? p}`);
  } else if (table) {
    computeApps = table.processes
      .filter((p) => p.type.includes('C'))
      .map((p) => ({
        gpuUuid: gpus.find((g) => g.index === p.gpuIndex)?.uuid ?? null,
        gpuIndex: p.gpuIndex,
        pid: p.pid,
        processName: p.processName,
        usedMemoryMiB: p.usedMemoryMiB,
      }));
  }
  for (const app of computeApps) {
    app.gpuIndex ??= gpus.find((g) => g.uuid !== null && g.uuid === app.gpuUuid)?.index ?? null;
  }

  const visible = resolveVisibleDevices(gpus, env);
  const driverVersion = gpus.find((g) => g.driverVersion)?.driverVersion ?? table?.driverVersion ?? null;
  const cudaVersion = table?.cudaVersion ?? null;
  const seen = visible.devices.length === gpus.length && visible.cudaVisibleDevices === null ? '' : ` ${visible.devices.length} visible to CUDA.`;
  const versions = [driverVersion && `driver ${driverVersion}`, cudaVersion && `CUDA ${cudaVersion}`].filter(Boolean).join(', ');
  const message = `${gpus.length} NVIDIA GPU${gpus.length === 1 ? '' : 's'}: ${countNames(gpus)}${versions ? ` (${versions})` : ''}.${seen}`;
  return {
    status: 'ok',
    reason: 'ok',
    message,
    gpus,
    computeApps,
    links: topology?.links ?? [],
    topology,
    legend: topology?.legend ?? [],
    visible,
    driverVersion,
    cudaVersion,
    warnings,
    platform: opts.platform ?? process.platform,
    arch: opts.arch ?? process.arch,
    readAt: (opts.now ?? new Date()).toISOString(),
  };
}

/** The state for a run that did not end in output we can use. */
export function runState(run: Exclude<SmiRun, { kind: 'ok' }>, timeoutMs: number): SmiState {
  switch (run.kind) {
    case 'missing':
      return {
        status: 'no-nvidia-smi',
        reason: 'no-nvidia-smi',
        message: 'No nvidia-smi on PATH: this looks like a machine without NVIDIA GPUs, so CUDA devices are unavailable here.',
      };
    case 'timeout':
      return {
        status: 'error',
        reason: 'timeout',
        message: `nvidia-smi did not answer within ${timeoutMs / 1000} s and was stopped; the driver may be busy or a GPU may be hung.`,
      };
    case 'cancelled':
      return { status: 'error', reason: 'cancelled', message: 'The GPU reading was cancelled.' };
    case 'spawn-failed':
      return { status: 'error', reason: 'spawn-failed', message: `nvidia-smi could not be started (${run.message}).` };
    case 'exit': {
      const output = `${run.stdout}\n${run.stderr}`;
      return recogniseSmiFailure(output) ?? exitState(run.code, output);
    }
  }
}

/** Reads GPUs, processes, topology and MIG state. Never throws; waits at most ~2 × timeoutMs. */
export async function readDevices(opts: ReadOptions = {}): Promise<DeviceReading> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const run = (args: readonly string[]): Promise<SmiRun> => runNvidiaSmi(args, { ...opts, timeoutMs });
  const q = await run(QUERY_GPU_ARGS);
  let queryGpu: string;
  const warnings: string[] = [];
  if (q.kind === 'ok') queryGpu = q.stdout;
  else {
    const state = runState(q, timeoutMs);
    // A non-zero exit can still carry rows for the GPUs that answered (one GPU off the bus).
    if (q.kind !== 'exit' || !parseQueryGpu(q.stdout).gpus.length) return stateReading(state, opts);
    queryGpu = q.stdout;
    warnings.push(state.message);
  }
  const secondary = async (what: string, args: readonly string[]): Promise<string | undefined> => {
    const r = await run(args);
    if (r.kind === 'ok') return r.stdout;
    warnings.push(`${what}: ${runState(r, timeoutMs).message}`);
    return undefined;
  };
  const [computeApps, topo, table] = await Promise.all([
    secondary('nvidia-smi --query-compute-apps', QUERY_APPS_ARGS),
    secondary('nvidia-smi topo -m', TOPO_ARGS),
    secondary('nvidia-smi (table)', TABLE_ARGS),
  ]);
  return buildReading({ queryGpu, computeApps, topo, table }, { ...opts, warnings });
}
