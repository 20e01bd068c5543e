/**
 * Parsers for `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` and
 * `--query-compute-apps=...`. Both tolerate a header line (with or without `[unit]` suffixes),
 * values with units ('81559 MiB'), placeholders ([N/A], [Not Supported], N/A), extra columns
 * and CRLF line ends. Lines that are not rows (an "Unable to determine the device handle"
 * message between rows, garbage) are returned as problems instead of failing the whole read.
 */
import type { ComputeApp, GpuInfo } from '../../shared/devices.ts';
import { cleanLines, numberOrNull, textOrNull } from './text.ts';

export const QUERY_GPU_FIELDS = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'memory.total',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'temperature.gpu',
  'power.draw',
  'power.limit',
  'driver_version',
] as const;

export const QUERY_APPS_FIELDS = ['gpu_uuid', 'pid', 'process_name', 'used_memory'] as const;

export const QUERY_GPU_ARGS: readonly string[] = [`--query-gpu=${QUERY_GPU_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];
export const QUERY_APPS_ARGS: readonly string[] = [`--query-compute-apps=${QUERY_APPS_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];

export interface QueryGpuResult {
  gpus: GpuInfo[];
  /** Lines that were not GPU rows, as printed. */
  problems: string[];
}

export interface ComputeAppsResult {
  apps: ComputeApp[];
  problems: string[];
}

// Names nvidia-smi accepts in a query and the name it prints in the header.
const ALIASES: Record<string, string> = { gpu_name: 'name', gpu_uuid: 'uuid', gpu_bus_id: 'pci.bus_id' };
const FIELD_NAME = /^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$/i;

function headerName(cell: string): string {
  const name = cell.trim().replace(/\s*\[[^\]]*\]$/, '');
  return ALIASES[name] ?? name;
}

/** True when the cells are a csv header: every cell a field name, one of them one we know. */
function isHeader(cells: string[], known: readonly string[]): boolean {
  const names = cells.map(headerName);
  return names.every((n) => FIELD_NAME.test(n)) && names.some((n) => known.includes(n));
}

function splitCsv(line: string): string[] {
  return line.split(',').map((c) => c.trim());
}

/** Reads `--query-gpu` csv. `fields` is the order asked for, used when there is no header. */
export function parseQueryGpu(text: string, fields: readonly string[] = QUERY_GPU_FIELDS): QueryGpuResult {
  const lines = cleanLines(text).filter((l) => l.trim() !== '');
  const problems: string[] = [];
  const gpus: GpuInfo[] = [];
  let columns = fields.map((f) => ALIASES[f] ?? f);
  let headed = false;
  lines.forEach((line, i) => {
    const cells = splitCsv(line);
    if (i === 0 && isHeader(cells, [...QUERY_GPU_FIELDS, 'mig.mode.current'])) {
      columns = cells.map(headerName);
      headed = true;
      return;
    }
    // A header fixes the width exactly; without one, extra trailing columns are ignored.
    if (headed ? cells.length !== columns.length : cells.length < columns.length) {
      problems.push(line.trim());
      return;
    }
    const rec = new Map<string, string>();
    columns.forEach((c, k) => rec.set(c, cells[k] ?? ''));
    const gpu = toGpu(rec, gpus.length);
    if (!gpu) problems.push(line.trim());
    else gpus.push(gpu);
  });
  return { gpus, problems };
}

function toGpu(rec: Map<string, string>, position: number): GpuInfo | null {
  const rawIndex = rec.get('index');
  let index = position;
  if (rawIndex !== undefined) {
    if (!/^\d+$/.test(rawIndex)) return null; // a row whose index is not a number is not a GPU row
    index = Number(rawIndex);
  }
  const uuid = textOrNull(rec.get('uuid'));
  if (uuid !== null && !/^(GPU|MIG)-/i.test(uuid)) return null;
  const first = (...names: string[]): string | undefined => {
    for (const n of names) {
      const v = rec.get(n);
      if (v !== undefined && textOrNull(v) !== null) return v;
    }
    return undefined;
  };
  return {
    index,
    uuid,
    name: textOrNull(rec.get('name')),
    pciBusId: textOrNull(rec.get('pci.bus_id')),
    memoryTotalMiB: numberOrNull(rec.get('memory.total')),
    memoryUsedMiB: numberOrNull(rec.get('memory.used')),
    memoryFreeMiB: numberOrNull(rec.get('memory.free')),
    utilizationPct: numberOrNull(rec.get('utilization.gpu')),
    temperatureC: numberOrNull(rec.get('temperature.gpu')),
    powerDrawW: numberOrNull(first('power.draw', 'power.draw.instant', 'power.draw.average')),
    powerLimitW: numberOrNull(first('power.limit', 'enforced.power.limit')),
    driverVersion: textOrNull(rec.get('driver_version')),
    migMode: textOrNull(rec.get('mig.mode.current')),
    migDevices: [],
  };
}

/**
 * Reads `--query-compute-apps=gpu_uuid,pid,process_name,used_memory`. A process name may hold
 * commas, so the name is everything between the pid and the last cell.
 */
export function parseComputeApps(text: string): ComputeAppsResult {
  const apps: ComputeApp[] = [];
  const problems: string[] = [];
  for (const line of cleanLines(text)) {
    if (line.trim() === '' || /no running processes/i.test(line)) continue;
    const cells = splitCsv(line);
    if (cells.length >= 4 && headerName(cells[0]!) === 'uuid' && cells[1] === 'pid') continue; // header
    const pid = cells[1];
    if (cells.length < 4 || pid === undefined || !/^\d+$/.test(pid)) {
      problems.push(line.trim());
      continue;
    }
    apps.push({
      gpuUuid: textOrNull(cells[0]),
      gpuIndex: null,
      pid: Number(pid),
      processName: cells.slice(2, -1).join(','),
      usedMemoryMiB: numberOrNull(cells[cells.length - 1]),
    });
  }
  return { apps, problems };
}
