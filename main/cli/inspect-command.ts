import { parseArgs } from 'node:util';
import type { InspectReport, TreeNode } from '../../shared/inspect.ts';
import { LAYOUT_TITLES, securityTitle } from '../../shared/layout-names.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { readDevices } from '../devices/read-devices.ts';
import { devicePlanFor } from './devices-command.ts';
import { fail } from '../errors.ts';
import { formatBytes, makeStyle, plural, type Style } from './format-text.ts';
import type { CliIO } from './io.ts';
import { withTag } from '../formats/deepspeed/locate.ts';

export const INSPECT_HELP = `ckpt inspect <file|DCP folder|DeepSpeed folder> [--json]

Shows what a checkpoint is without running any of its code: format and version records,
layout verdict (cpu, single-gpu, dp, ddp, mixed) with evidence, tensor and byte counts by
dtype and device, a collapsed key tree, and security findings.

  --json       print one JSON object (format, layout, tensors, security, devicePlan, ...)
  --no-devices skip the device plan (it runs nvidia-smi, when present, to read this machine)
  --width N    children shown per tree node (default 12; JSON default 64)
  --tag T      a DeepSpeed folder's tag folder (default: the one 'latest' names)`;

export async function runInspect(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      width: { type: 'string' },
      'no-devices': { type: 'boolean' },
      tag: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(INSPECT_HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1) fail('usage', 'inspect takes exactly one file: ckpt inspect <file> [--json]');
  const width = values.width !== undefined ? Number(values.width) : undefined;
  if (width !== undefined && !(width > 0)) fail('usage', '--width takes a positive number');
  const file = withTag(positionals[0]!, values.tag);
  const c = openCheckpoint(file, { treeWidth: width ?? (values.json ? 64 : 12) });
  try {
    if (!values['no-devices'] && c.report.totals.tensors > 0) {
      // Will these device tags load here? Only the machine's GPUs can say (a CPU-only machine answers at once).
      c.report.devicePlan = devicePlanFor(c.report.layout.devices, await readDevices({ timeoutMs: 3000 }));
    }
    if (values.json) await writeReportJson(c.report, io.stdout, io.stdoutRoom);
    else io.stdout(renderInspect(c.report, makeStyle(io.color)));
  } finally {
    c.close();
  }
  return 0;
}

/** Tensor entries stringified and written at a time. */
const JSON_CHUNK = 4096;

/**
 * `JSON.stringify(report) + '\n'`, byte for byte, written in pieces: the tensor list of 500,000
 * tensors is 120 MB of text, which whole would be held twice (the string and its bytes). `room`
 * (the CLI's `stdoutRoom`) is awaited after each piece: into a pipe, Node queues what the reader
 * has not taken yet, and without waiting the whole output was held in memory at once.
 */
export async function writeReportJson(report: InspectReport, write: (s: string) => void, room?: () => Promise<void>): Promise<void> {
  const before: Record<string, unknown> = {};
  const after: Record<string, unknown> = {};
  let side = before;
  for (const [k, v] of Object.entries(report)) {
    if (k === 'tensors') side = after;
    else side[k] = v;
  }
  const head = JSON.stringify(before);
  write(`${head.slice(0, -1)}${head === '{}' ? '' : ','}"tensors":[`);
  for (let i = 0; i < report.tensors.length; i += JSON_CHUNK) {
    const part = JSON.stringify(report.tensors.slice(i, i + JSON_CHUNK));
    write((i ? ',' : '') + part.slice(1, -1));
    await room?.();
  }
  const tail = JSON.stringify(after);
  write(`]${tail === '{}' ? '}' : `,${tail.slice(1)}`}\n`);
}

export function renderInspect(r: InspectReport, s: Style): string {
  const lines: string[] = [];
  const row = (label: string, text: string): void => {
    lines.push(`${s.bold(label.padEnd(10))}  ${text}`);
  };
  const sub = (text: string): void => {
    lines.push(`${' '.repeat(12)}${text}`);
  };
  row('file', `${r.file}  (${formatBytes(r.fileBytes)})`);
  const recs = Object.entries(r.records)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  row('format', `${r.format}${recs ? s.dim(`  ${recs}`) : ''}`);
  const lay = r.layout;
  row('layout', `${s.bold(LAYOUT_TITLES[lay.kind])} (${lay.kind})${lay.prefixes.length ? `, prefixes ${lay.prefixes.map((p) => `'${p}'`).join(' + ')}` : ''}`);
  for (const e of lay.evidence) sub(s.dim(`- ${e}`));
  const roles = r.roles.map(
    (x) => `${x.kind}${x.path.length ? ` at ${x.path.join('/')}` : ''}${x.className ? ` (${x.className})` : ''}${x.note ? ` [${x.note}]` : ''}`,
  );
  if (roles.length) row('contains', roles.slice(0, 6).join('; ') + (roles.length > 6 ? `; +${roles.length - 6} more` : ''));
  const t = r.totals;
  row('tensors', `${plural(t.tensors, 'tensor')} in ${plural(t.storages, 'storage')}, ${formatBytes(t.storageBytes)}`);
  sub(
    `by dtype   ${Object.entries(t.byDtype)
      .map(([k, v]) => `${k} ${v.tensors} (${formatBytes(v.bytes)})`)
      .join(' · ')}`,
  );
  sub(
    `by device  ${Object.entries(t.byDevice)
      .map(([k, v]) => `${k} ${v.tensors} (${formatBytes(v.bytes)})`)
      .join(' · ')}`,
  );
  const shared = r.tensors.filter((x) => x.shared).length;
  if (shared) sub(`${shared} tensor paths share a storage with another (tied weights or views)`);
  const sec = r.security;
  const color = sec.verdict === 'dangerous' ? s.red : sec.verdict === 'unknown-class' ? s.yellow : s.green;
  row('security', color(securityTitle(sec, r.loading)));
  if (sec.verdict !== 'safe' && sec.weightsOnly?.refusal) sub(s.dim(`weights_only: ${sec.weightsOnly.refusal}`));
  for (const g of sec.globals.filter((x) => x.class === 'dangerous' || x.class === 'unknown-class').slice(0, 12)) {
    sub(
      (g.class === 'dangerous' ? s.red : s.yellow)(`${g.class === 'dangerous' ? '!!' : '? '} ${g.name}${g.calls ? ` (called ${g.calls}x)` : ''}: ${g.reason}`),
    );
    if (g.class === 'dangerous' && g.example) sub(s.red(`   would run: ${g.example}`));
  }
  const load = r.loading;
  if (load) {
    row('loads', load.how);
    if (load.why) sub(s.dim(`weights_only=True refuses it: ${load.why}`));
  }
  const plan = r.devicePlan;
  if (plan) {
    row('here', plan.loadsAsIs === false ? s.yellow(plan.summary) : plan.summary);
    for (const t of plan.tags.filter((x) => x.loads === false)) sub(s.yellow(`${t.tag}: ${t.reason}`));
    if (plan.fix && load && !load.convertible) {
      // ckpt convert refuses this format: the fix is the loader's own map_location
      if (load.how.includes('map_location')) sub(`fix: ${load.how}`);
    } else if (plan.fix) {
      const opts = plan.fix.preset
        ? `--preset ${plan.fix.preset}`
        : Object.entries(plan.fix.remap ?? {})
            .map(([a, b]) => `--map-location ${a}=${b}`)
            .join(' ');
      sub(`fix: ckpt convert ${JSON.stringify(r.file)} ${opts} -o <out>`);
    }
  }
  for (const n of r.notes) row('note', n);
  lines.push(s.bold('tree'));
  renderTree(r.tree, '', true, lines, s, 0);
  return lines.join('\n') + '\n';
}

function renderTree(n: TreeNode, indent: string, last: boolean, out: string[], s: Style, depth: number): void {
  const label =
    depth === 0 ? s.dim(n.type) : `${String(n.key)}  ${s.dim(n.type === 'tensor' || n.type === 'Parameter' ? n.summary : `${n.type} ${n.summary}`)}`;
  out.push(depth === 0 ? `  ${label} ${s.dim(n.summary)}` : `${indent}${last ? '└─ ' : '├─ '}${label}`);
  const kids = n.children ?? [];
  const next = depth === 0 ? '  ' : indent + (last ? '   ' : '│  ');
  kids.forEach((k, i) => renderTree(k, next, i === kids.length - 1 && !n.more, out, s, depth + 1));
  if (n.more) out.push(`${next}└─ ${s.dim(`… ${n.more} more`)}`);
}
