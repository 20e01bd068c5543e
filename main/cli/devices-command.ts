/**
 * `ckpt devices [--json] [--timeout SECONDS]`: this machine's NVIDIA GPUs, their topology and
 * what CUDA will see. Machine states such as "no nvidia-smi" or a driver mismatch are answers,
 * not failures: they print their message and exit 0. Only a wrong command line exits 2.
 */
import type { DevicePlan, DeviceReading } from '../../shared/devices.ts';
import { planDevices, type PlanOptions } from '../devices/device-plan.ts';
import { readDevices, type ReadOptions } from '../devices/read-devices.ts';
import { plural } from './format-text.ts';

export interface CommandOutput {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const DEVICES_USAGE = `Usage: ckpt devices [--json] [--timeout SECONDS]

Shows this machine's NVIDIA GPUs, how they are connected (nvidia-smi topo -m) and which of
them CUDA will number cuda:0, cuda:1, ... given CUDA_VISIBLE_DEVICES.

  --json              print the reading as JSON
  --timeout SECONDS   give each nvidia-smi call this long (default 5)
`;

/** The device plan for `ckpt inspect --json` (`devicePlan`): see main/devices/device-plan.ts. */
export function devicePlanFor(deviceCounts: Record<string, number>, reading: DeviceReading, opts?: PlanOptions): DevicePlan {
  return planDevices(deviceCounts, reading, opts);
}

/** Runs `ckpt devices`; `readOptions` lets tests point it at a fake nvidia-smi. */
export async function runDevicesCommand(args: string[], out: CommandOutput, readOptions: ReadOptions = {}): Promise<number> {
  let json = false;
  let timeoutMs = readOptions.timeoutMs;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '-h' || a === '--help') {
      out.stdout(DEVICES_USAGE);
      return 0;
    } else if (a === '--timeout' || a.startsWith('--timeout=')) {
      const v = a === '--timeout' ? args[++i] : a.slice('--timeout='.length);
      const s = Number(v);
      if (v === undefined || v === '' || !Number.isFinite(s) || s <= 0) {
        out.stderr(`ckpt devices: --timeout needs a number of seconds above 0, not ${v === undefined ? 'nothing' : `'${v}'`}\n`);
        return 2;
      }
      timeoutMs = s * 1000;
    } else {
      out.stderr(`ckpt devices: unknown argument '${a}'\n${DEVICES_USAGE}`);
      return 2;
    }
  }
  const reading = await readDevices({ ...readOptions, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  out.stdout(json ? `${JSON.stringify(reading, null, 2)}\n` : formatReading(reading));
  return 0;
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((c, k) => {
      widths[k] = Math.max(widths[k] ?? 0, c.length);
    });
  return (
    rows
      .map((r) =>
        r
          .map((c, k) => (k === r.length - 1 ? c : c.padEnd(widths[k]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

const num = (n: number | null, unit = ''): string => (n === null ? '-' : `${Math.round(n)}${unit}`);

/** The human form: GPU table, topology matrix with the legend of the codes it uses, CUDA view, status. */
export function formatReading(r: DeviceReading): string {
  let s = '';
  if (r.gpus.length) {
    const rows = [['GPU', 'Name', 'Memory used/total', 'Util', 'Temp', 'Power', 'PCI bus', 'MIG']];
    for (const g of r.gpus) {
      rows.push([
        String(g.index),
        g.name ?? '-',
        g.memoryTotalMiB === null && g.memoryUsedMiB === null ? '-' : `${num(g.memoryUsedMiB)} / ${num(g.memoryTotalMiB)} MiB`,
        num(g.utilizationPct, '%'),
        num(g.temperatureC, 'C'),
        g.powerDrawW === null && g.powerLimitW === null ? '-' : `${num(g.powerDrawW)} / ${num(g.powerLimitW)} W`,
        g.pciBusId ?? '-',
        g.migMode === null ? '-' : `${g.migMode}${g.migDevices.length ? ` (${plural(g.migDevices.length, 'instance')})` : ''}`,
      ]);
    }
    s += table(rows);
  }
  const t = r.topology;
  if (t && t.gpus.length > 1) {
    s += '\nTopology (nvidia-smi topo -m)\n';
    s += table([['', ...t.matrix.columns], ...t.matrix.rows.map((row) => [row.label, ...row.cells])]);
    const used = new Set<string>();
    for (const row of t.matrix.rows)
      for (const c of row.cells) {
        const code = /^NV\d+$/.test(c) ? 'NV#' : c === 'SOC' ? 'SYS' : c;
        if (t.legend.some((e) => e.code === code) && code !== 'X') used.add(code);
      }
    for (const e of t.legend) if (used.has(e.code)) s += `  ${e.code.padEnd(4)} = ${e.meaning}\n`;
    for (const n of t.nicLegend) s += `  ${n.nic} = ${n.device}\n`;
  }
  if (r.computeApps.length) {
    s += '\nProcesses\n';
    s += table([
      ['GPU', 'PID', 'Process', 'Memory'],
      ...r.computeApps.map((a) => [
        a.gpuIndex === null ? '?' : String(a.gpuIndex),
        String(a.pid),
        a.processName,
        a.usedMemoryMiB === null ? '-' : `${a.usedMemoryMiB} MiB`,
      ]),
    ]);
  }
  s += `\nCUDA: ${r.visible.note}\n`;
  for (const w of [...r.visible.warnings, ...r.warnings]) s += `Warning: ${w}\n`;
  s += `Status: ${r.status}: ${r.message}\n`;
  return s.replace(/^\n/, '');
}
