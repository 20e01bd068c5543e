/**
 * Parser for `nvidia-smi topo -m`. Reads both layouts seen in the wild: TAB-separated with ANSI
 * underline around the header (what nvidia-smi prints to a terminal), and space-padded (what
 * people paste). Rows and columns may include NICs, old-style (`mlx4_0`) or new-style (`NIC0`
 * with a `NIC Legend:` section), and trailing `CPU Affinity`, `NUMA Affinity`, `GPU NUMA ID`.
 */
import {
  LEGEND_ORDER,
  LINK_MEANINGS,
  linkMeaning,
  linkRank,
  type GpuAffinity,
  type LegendEntry,
  type LinkType,
  type Topology,
  type TopologyLink,
  type TopologyNic,
} from '../../shared/devices.ts';
import { cleanLines, textOrNull } from './text.ts';

export const TOPO_ARGS: readonly string[] = ['topo', '-m'];

const AFFINITY_COLUMNS = ['CPU Affinity', 'NUMA Affinity', 'GPU NUMA ID'];
const GPU_LABEL = /^GPU(\d+)$/;

/** One matrix cell: 'NV12' -> NV with 12 links, 'SOC' (pre-2017 drivers) -> SYS. */
export function parseLinkCell(cell: string): { type: LinkType; nvlinks: number } {
  const c = cell.trim().toUpperCase();
  const nv = /^NV(\d+)$/.exec(c);
  if (nv) return { type: 'NV', nvlinks: Number(nv[1]) };
  if (c === 'SOC') return { type: 'SYS', nvlinks: 0 };
  if (c === 'X' || c === 'PIX' || c === 'PXB' || c === 'PHB' || c === 'NODE' || c === 'SYS') return { type: c, nvlinks: 0 };
  return { type: 'unknown', nvlinks: 0 };
}

/** Header cells of a space-padded header: multi-word names are put back together. */
function spacedHeader(line: string): string[] {
  const tokens = line.trim().split(/\s+/);
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const two = `${tokens[i]} ${tokens[i + 1] ?? ''}`;
    const three = `${two} ${tokens[i + 2] ?? ''}`;
    if (AFFINITY_COLUMNS.includes(three)) {
      out.push(three);
      i += 2;
    } else if (AFFINITY_COLUMNS.includes(two)) {
      out.push(two);
      i += 1;
    } else out.push(tokens[i]!);
  }
  return out;
}

/** Parses `nvidia-smi topo -m`; null when the text holds no GPU matrix. */
export function parseTopology(text: string): Topology | null {
  const lines = cleanLines(text);
  const h = lines.findIndex((l) => /^\s/.test(l) && /(^|\s)GPU0(\s|$)/.test(l));
  if (h < 0) return null;
  const tabbed = lines[h]!.includes('\t');
  const columns = tabbed
    ? lines[h]!.split('\t')
        .slice(1)
        .map((c) => c.trim())
    : spacedHeader(lines[h]!);
  while (columns.length && columns[columns.length - 1] === '') columns.pop();
  let deviceCount = columns.findIndex((c) => AFFINITY_COLUMNS.includes(c));
  if (deviceCount < 0) deviceCount = columns.length;
  const trailing = columns.slice(deviceCount);

  const rows: { label: string; cells: string[] }[] = [];
  const affinity: GpuAffinity[] = [];
  let i = h + 1;
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || /^\s*Legend:/.test(line)) break;
    const parts = tabbed ? line.split('\t').map((c) => c.trim()) : line.trim().split(/\s+/);
    const label = parts[0]!;
    const values = parts.slice(1);
    const matrix = values.slice(0, deviceCount);
    const rest = values.slice(deviceCount);
    // nvidia-smi puts an empty TAB cell before `GPU NUMA ID`, so the row can be one cell wider
    // than the header: take the leading trailing-columns from the front, the last from the end.
    const extra: string[] = trailing.map((_, k) => (rest.length > trailing.length && k === trailing.length - 1 ? rest[rest.length - 1]! : (rest[k] ?? '')));
    rows.push({ label, cells: [...matrix, ...extra] });
    const g = GPU_LABEL.exec(label);
    if (g) {
      const at = (name: string): string | null => {
        const k = trailing.indexOf(name);
        return k < 0 ? null : textOrNull(extra[k]);
      };
      affinity.push({ gpu: Number(g[1]), cpuAffinity: at('CPU Affinity'), numaAffinity: at('NUMA Affinity'), gpuNumaId: at('GPU NUMA ID') });
    }
  }

  const { legend, nicLegend } = parseLegends(lines.slice(i));
  const effectiveLegend = legend.length ? legend : defaultLegend();

  const cellOf = (rowLabel: string, colLabel: string): string | undefined => {
    const c = columns.indexOf(colLabel);
    return c < 0 || c >= deviceCount ? undefined : rows.find((r) => r.label === rowLabel)?.cells[c];
  };
  const gpuRows = rows.filter((r) => GPU_LABEL.test(r.label));
  const gpus = gpuRows.map((r) => Number(GPU_LABEL.exec(r.label)![1]));

  const links: TopologyLink[] = [];
  for (let x = 0; x < gpus.length; x++) {
    for (let y = x + 1; y < gpus.length; y++) {
      const a = Math.min(gpus[x]!, gpus[y]!);
      const b = Math.max(gpus[x]!, gpus[y]!);
      const ab = cellOf(`GPU${a}`, `GPU${b}`);
      const ba = cellOf(`GPU${b}`, `GPU${a}`);
      // The matrix is symmetric on every capture we have; if a driver ever disagrees, trust the worse.
      const candidates = [ab, ba].filter((c): c is string => c !== undefined && c !== '');
      if (!candidates.length) continue;
      const parsed = candidates
        .map((label) => ({ label, ...parseLinkCell(label) }))
        .sort((p, q) => linkRank(p.type, p.nvlinks) - linkRank(q.type, q.nvlinks))[0]!;
      links.push({
        a,
        b,
        type: parsed.type,
        nvlinks: parsed.nvlinks,
        label: parsed.label,
        rank: linkRank(parsed.type, parsed.nvlinks),
        meaning: linkMeaning(parsed.type, parsed.nvlinks, effectiveLegend),
      });
    }
  }
  links.sort((p, q) => p.a - q.a || p.b - q.b);

  const nics: TopologyNic[] = rows
    .filter((r) => !GPU_LABEL.test(r.label))
    .map((r) => ({
      label: r.label,
      device: nicLegend.find((n) => n.nic === r.label)?.device ?? r.label,
      gpus: gpus.map((gpu) => {
        const label = cellOf(r.label, `GPU${gpu}`) ?? '';
        return { gpu, label, type: parseLinkCell(label).type };
      }),
    }));

  return { gpus, links, nics, affinity, legend: effectiveLegend, nicLegend, matrix: { columns, rows } };
}

function parseLegends(lines: string[]): { legend: LegendEntry[]; nicLegend: { nic: string; device: string }[] } {
  const legend: LegendEntry[] = [];
  const nicLegend: { nic: string; device: string }[] = [];
  let section: 'none' | 'legend' | 'nic' = 'none';
  for (const line of lines) {
    if (/^\s*NIC Legend:/.test(line)) {
      section = 'nic';
      continue;
    }
    if (/^\s*Legend:/.test(line)) {
      section = 'legend';
      continue;
    }
    if (section === 'legend') {
      const m = /^\s*(\S+)\s*=\s*(.+?)\s*$/.exec(line);
      if (m) legend.push({ code: m[1]!, meaning: m[2]! });
    } else if (section === 'nic') {
      const m = /^\s*(NIC\d+)\s*:\s*(\S+)/.exec(line);
      if (m) nicLegend.push({ nic: m[1]!, device: m[2]! });
    }
  }
  return { legend, nicLegend };
}

/** nvidia-smi's legend, for captures published without it. */
export function defaultLegend(): LegendEntry[] {
  return LEGEND_ORDER.map((t) => ({ code: t === 'NV' ? 'NV#' : t, meaning: LINK_MEANINGS[t] }));
}
