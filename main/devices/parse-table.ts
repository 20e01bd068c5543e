/**
 * Parser for the default `nvidia-smi` table. It is the one output that lists MIG instances
 * (GPU instance / compute instance / MIG Dev, with their memory slices) and the driver's CUDA
 * version, so the reading uses it for those; names in it may be truncated ('RTX 2080 ...').
 * Handles the 79-column (r390-r470), 86/89-column (r510+) and 610-series ('KMD Version',
 * 'CUDA UMD Version') layouts, Windows' Driver-Model column and N/A / Not Supported cells.
 */
import type { MigDevice } from '../../shared/devices.ts';
import { cleanLines, numberOrNull, textOrNull } from './text.ts';

export const TABLE_ARGS: readonly string[] = [];

export interface TableGpu {
  index: number;
  /** As printed; nvidia-smi cuts long names to '...'. */
  name: string;
  nameTruncated: boolean;
  pciBusId: string | null;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  utilizationPct: number | null;
  temperatureC: number | null;
  powerDrawW: number | null;
  powerLimitW: number | null;
  /** 'Enabled' / 'Disabled' from the MIG M. row; null where the layout has none or N/A. */
  migMode: string | null;
}

export interface TableProcess {
  gpuIndex: number;
  gpuInstanceId: number | null;
  computeInstanceId: number | null;
  pid: number;
  /** 'C', 'G', 'C+G', 'M', ... */
  type: string;
  processName: string;
  usedMemoryMiB: number | null;
}

export interface SmiTable {
  smiVersion: string | null;
  driverVersion: string | null;
  cudaVersion: string | null;
  gpus: TableGpu[];
  /** null when the table has no MIG section; [] for "No MIG devices found". */
  migDevices: MigDevice[] | null;
  processes: TableProcess[];
}

function cellsOf(line: string): string[] {
  // '| a | b | c |' -> ['a', 'b', 'c'] (untrimmed inner text)
  return line
    .replace(/^\s*\|/, '')
    .replace(/\|\s*$/, '')
    .split('|');
}

const isRule = (l: string): boolean => /^\s*[+|][-=+|]+\s*$/.test(l) && /[-=]{3}/.test(l);
const isBlockEnd = (l: string): boolean => /^\s*\+[-+]+\+\s*$/.test(l);

function memoryPair(cell: string): { used: number | null; total: number | null } {
  const m = /(\d+)\s*MiB\s*\/\s*(\d+)\s*MiB/.exec(cell);
  return m ? { used: Number(m[1]), total: Number(m[2]) } : { used: null, total: null };
}

/** Parses the default `nvidia-smi` output; null when the text is not that table. */
export function parseSmiTable(text: string): SmiTable | null {
  const lines = cleanLines(text);
  const headerLine = lines.find((l) => /NVIDIA-SMI\s+\S+/.test(l));
  if (!headerLine) return null;
  const smiVersion = /NVIDIA-SMI\s+(\S+)/.exec(headerLine)?.[1] ?? null;
  const driverVersion = textOrNull(/(?:Driver|KMD) Version:\s*(\S+)/.exec(headerLine)?.[1]);
  const cudaVersion = textOrNull(/CUDA (?:UMD )?Version:\s*(\S+)/.exec(headerLine)?.[1]);

  const migAt = lines.findIndex((l) => /^\|\s*MIG devices:/.test(l));
  const procAt = lines.findIndex((l) => /^\|\s*Processes:/.test(l));
  const gpuEnd = [migAt, procAt].filter((n) => n >= 0).reduce((a, b) => Math.min(a, b), lines.length);
  const gpus = parseGpuSection(lines.slice(0, gpuEnd));
  const migDevices = migAt < 0 ? null : parseMigSection(lines.slice(migAt, procAt > migAt ? procAt : lines.length));
  const processes = procAt < 0 ? [] : parseProcessSection(lines.slice(procAt));
  return { smiVersion, driverVersion, cudaVersion, gpus, migDevices, processes };
}

/** Rows after the first '|===' rule, grouped into blocks separated by '+---+' lines. */
function blocksAfterRule(lines: string[]): string[][] {
  const start = lines.findIndex((l) => /^\|=+/.test(l.trim()));
  if (start < 0) return [];
  const blocks: string[][] = [];
  let cur: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (isBlockEnd(l) || l.trim() === '') {
      if (cur.length) blocks.push(cur);
      cur = [];
      if (l.trim() === '') break;
      continue;
    }
    if (l.trim().startsWith('|')) cur.push(l);
  }
  if (cur.length) blocks.push(cur);
  return blocks;
}

function parseGpuSection(lines: string[]): TableGpu[] {
  const gpus: TableGpu[] = [];
  for (const block of blocksAfterRule(lines)) {
    const [first, second, third] = block.map(cellsOf);
    if (!first || !second) continue;
    // '   0  NVIDIA A100-PCI...  On   ' : index, name, then Persistence-M or Driver-Model
    const m = /^\s*(\d+)\s+(.*?)\s{2,}(\S+)\s*$/.exec(first[0] ?? '');
    if (!m) continue;
    const name = m[2]!.trim();
    const bus = /^\s*(\S+)/.exec(first[1] ?? '')?.[1];
    const power = /(\S+)\s*\/\s*(\S+)\s*$/.exec(second[0] ?? ''); // '44W / 250W', 'N/A /  N/A'
    const mem = memoryPair(second[1] ?? '');
    const util = /^\s*(\S+)/.exec(second[2] ?? '')?.[1];
    const mig = third ? /(\S+)\s*$/.exec(third[2] ?? '')?.[1] : undefined;
    gpus.push({
      index: Number(m[1]),
      name,
      nameTruncated: name.endsWith('...'),
      pciBusId: textOrNull(bus),
      memoryUsedMiB: mem.used,
      memoryTotalMiB: mem.total,
      utilizationPct: numberOrNull(util),
      temperatureC: numberOrNull(/\s(\d+)C\s/.exec(` ${second[0] ?? ''} `)?.[1]),
      powerDrawW: numberOrNull(power?.[1]),
      powerLimitW: numberOrNull(power?.[2]),
      migMode: mig === 'Enabled' || mig === 'Disabled' ? mig : null,
    });
  }
  return gpus;
}

function parseMigSection(lines: string[]): MigDevice[] {
  const devices: MigDevice[] = [];
  for (const block of blocksAfterRule(lines)) {
    const cells = cellsOf(block[0]!);
    const ids = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(cells[0] ?? '');
    if (!ids) continue; // "No MIG devices found"
    const mem = memoryPair(cells[1] ?? '');
    devices.push({
      gpuIndex: Number(ids[1]),
      gpuInstanceId: Number(ids[2]),
      computeInstanceId: Number(ids[3]),
      migIndex: Number(ids[4]),
      memoryUsedMiB: mem.used,
      memoryTotalMiB: mem.total,
      sm: numberOrNull(/^\s*(\d+)/.exec(cells[2] ?? '')?.[1]),
    });
  }
  return devices;
}

function parseProcessSection(lines: string[]): TableProcess[] {
  const withInstances = lines.some((l) => /\bGI\b/.test(l) && /\bCI\b/.test(l));
  const processes: TableProcess[] = [];
  const start = lines.findIndex((l) => /^\|=+/.test(l.trim()));
  for (const l of lines.slice(start + 1)) {
    if (isBlockEnd(l) || isRule(l)) break;
    const row = withInstances
      ? /^\s*\|\s*(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(.*?)\s+(\S+)\s*\|\s*$/.exec(l)
      : /^\s*\|\s*(\d+)\s+()()(\d+)\s+(\S+)\s+(.*?)\s+(\S+)\s*\|\s*$/.exec(l);
    if (!row) continue; // "No running processes found"
    processes.push({
      gpuIndex: Number(row[1]),
      gpuInstanceId: withInstances ? numberOrNull(row[2]) : null,
      computeInstanceId: withInstances ? numberOrNull(row[3]) : null,
      pid: Number(row[4]),
      type: row[5]!,
      processName: row[6]!,
      usedMemoryMiB: numberOrNull(row[7]),
    });
  }
  return processes;
}
