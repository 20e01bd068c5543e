import { parseArgs } from 'node:util';
import type { InspectReport, TensorInfo, TreeNode } from '../../shared/inspect.ts';
import { LAYOUT_TITLES, securityTitle } from '../../shared/layout-names.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { rootStorage, type Checkpoint } from '../checkpoint/inspect.ts';
import { readDevices } from '../devices/read-devices.ts';
import { devicePlanFor } from './devices-command.ts';
import { fail } from '../errors.ts';
import { formatBytes, makeStyle, plural, type Style } from './format-text.ts';
import type { CliIO } from './io.ts';
import { writeJsonInPieces } from './json-pieces.ts';
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
    if (values.json) {
      // the tensor list is made as it is written: its place in the report holds a stand-in
      const pieces = c.tensorInfoPieces();
      const standIn: TensorInfo[] = [];
      c.report.tensors = standIn;
      await writeJsonInPieces(
        c.report,
        [{ at: standIn, length: pieces.length, items: pieces.items, json: pieces.json, utf8: pieces.utf8 }],
        io.stdout,
        io.stdoutRoom,
        io.stdoutBytes,
      );
    } else io.stdout(renderInspect(c.report, makeStyle(io.color), sharedPathCount(c)));
  } finally {
    c.close();
  }
  return 0;
}

/** Tensor paths whose storage another path uses too (analyse's shared storages; no tensor list is built). */
function sharedPathCount(c: Checkpoint): number {
  let shared = 0;
  for (let i = 0; i < c.tensors.length; i++) {
    const { tensor } = c.tensors[i]!; // indexed: see `analyse`
    if (tensor.storage && c.sharedStorages.has(rootStorage(tensor.storage))) shared++;
  }
  return shared;
}

/** `shared`: how many tensor paths share a storage, when the caller has counted them (else from `r.tensors`). */
export function renderInspect(r: InspectReport, s: Style, shared = r.tensors.filter((x) => x.shared).length): string {
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
