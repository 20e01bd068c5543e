import type { CastSummary } from '../../shared/presets.ts';
import { loadsWithFor, type ConversionPlan, type ConversionReport, type OutputReport } from '../../shared/convert.ts';
import { keyChangeCounts, type PackedConversionPlan } from '../convert/packed-report.ts';
import { LAYOUT_TITLES } from '../../shared/layout-names.ts';
import { PRESETS } from '../../shared/presets.ts';
import type { BatchItem, BatchSummary } from '../jobs/batch.ts';
import { formatBytes, plural, reportRow, type Style } from './format-text.ts';

/** The plan as the dry run prints it: what each rule will do, before anything is written. */
export function renderPlan(plan: ConversionPlan | PackedConversionPlan, s: Style, detailed: boolean): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(reportRow(s, k, v));
  const lay = plan.layoutBefore;
  row('source', `${plan.source}  (${LAYOUT_TITLES[lay.kind]}${lay.prefixes.length ? `, prefixes ${lay.prefixes.map((p) => `'${p}'`).join(' + ')}` : ''})`);
  const preset = plan.rules.preset;
  const info = preset ? PRESETS.find((p) => p.name === preset.name) : undefined;
  row('target', `${plan.layoutAfter}${info ? s.dim(`  keys: ${info.keys}; devices: ${info.devices}`) : ''}`);
  if (plan.rootChange) row('container', plan.rootChange);
  for (const sd of plan.stateDicts) {
    const show = detailed ? 8 : 2;
    const { total, changed, changedCount, dropped, droppedCount } = keyChangeCounts(sd.keys, show);
    const where = sd.path.length ? ` at ${sd.path.join('/')}` : '';
    row(
      'keys',
      `${plural(total, 'key')}${where}: ${changedCount} renamed, ${droppedCount} dropped, ${total - changedCount - droppedCount} unchanged${prefixChange(sd.stripped, sd.added)}`,
    );
    for (const k of [...changed, ...dropped]) lines.push(`          ${k.from} ${s.dim('→')} ${k.to ?? s.red('(dropped)')}`);
    if (changedCount + droppedCount > 2 * show)
      lines.push(s.dim(`          … ${changedCount + droppedCount - Math.min(changedCount, show) - Math.min(droppedCount, show)} more`));
    if (detailed && sd.metadata.length) lines.push(s.dim(`          _metadata: ${sd.metadata.length} module entries follow the keys`));
  }
  for (const o of plan.outputs) {
    const dev = o.devices
      .map((d) =>
        d.from === d.to
          ? `${d.from} (unchanged, ${plural(d.tensors, 'tensor')})`
          : `${d.from} → ${d.to} (${plural(d.tensors, 'tensor')}, ${formatBytes(d.bytes)})`,
      )
      .join('; ');
    row(o.rank !== undefined ? `rank ${o.rank}` : 'output', `${o.file}${o.exists ? s.yellow('  (exists: --force to overwrite)') : ''}`);
    lines.push(`          devices: ${dev || 'no tensors'}`);
  }
  row('tensors', `${plan.tensors.kept} written, ${plan.tensors.dropped} dropped`);
  if (plan.carried.length) row('carried', plan.carried.join('; '));
  for (const w of plan.warnings) row('note', s.yellow(w));
  for (const e of plan.errors) row('error', s.red(e));
  return lines.join('\n') + '\n';
}

/** A conversion's report as text: counts only, so the per-tensor lists may be in any form (packed, in columns, expanded). */
export function renderReport(
  r: Omit<ConversionReport, 'plan' | 'outputs'> & { plan: ConversionPlan | PackedConversionPlan; outputs: Omit<OutputReport, 'checks'>[] },
  s: Style,
): string {
  const lines = [renderPlan(r.plan, s, false).trimEnd()];
  for (const o of r.outputs) {
    const verdict = o.verified
      ? s.green(`verified: ${plural(o.tensors, 'tensor')}, CRC-32 of ${plural(o.storages, 'storage')} equal to the source`)
      : s.red(`NOT verified: ${o.mismatch}`);
    lines.push(reportRow(s, 'written', `${o.file}  ${formatBytes(o.bytes)}  ${verdict}`));
  }
  if (r.cast) lines.push(reportRow(s, 'dtype', castText(r.cast, s)));
  const loadsWith = loadsWithFor(r.plan, !!r.codeFree?.kept.length);
  if (loadsWith) lines.push(reportRow(s, 'load it', loadsWith));
  const cf = r.codeFree;
  if (cf) lines.push(...codeFreeLines(cf, s));
  if (cf?.leftBehind.length) lines.push(reportRow(s, 'left', `${cf.leftBehind.join(', ')} ${s.dim('(in the source, not in the output)')}`));
  lines.push(s.dim(`          ${r.seconds.toFixed(2)} s, ${formatBytes(r.bytesCopied)} copied`));
  return lines.join('\n') + '\n';
}

/** What was made plain data and what was kept so that an output carries no code (convert and reshard reports). */
export function codeFreeLines(cf: { converted: string[]; kept: string[] }, s: Style): string[] {
  const lines: string[] = [];
  if (cf.converted.length)
    lines.push(reportRow(s, 'plain', `${cf.converted.join('; ')} ${s.dim("(torch.load(weights_only=True) refuses the source's types)")}`));
  if (cf.kept.length) lines.push(reportRow(s, 'kept', s.yellow(`${cf.kept.join(', ')} (--keep-objects: torch.load(weights_only=True) refuses these)`)));
  return lines;
}

export function renderBatchLine(item: BatchItem, s: Style): string {
  const src = item.sources.length > 1 ? `${item.sources[0]} (+${item.sources.length - 1} ranks)` : item.sources[0];
  switch (item.status) {
    case 'done':
      return `${s.green('ok  ')} ${src} → ${item.outputs.join(', ')}  verified${item.reason ? s.yellow(`  (${item.reason})`) : ''}${item.seconds !== undefined ? s.dim(`  ${item.seconds.toFixed(2)} s`) : ''}`;
    case 'skipped':
      return `${s.dim('skip')} ${src}: ${item.reason}`;
    case 'cancelled':
      return `${s.yellow('stop')} ${src}: cancelled, nothing written`;
    default:
      return `${s.red('FAIL')} ${src}: ${item.reason}`;
  }
}

export function renderBatchSummary(sum: BatchSummary, outDir: string, s: Style): string {
  const rate = sum.seconds > 0 ? sum.bytes / sum.seconds : 0;
  const parts = [`${sum.done} converted`, `${sum.skipped} already done`, `${sum.failed} failed`];
  if (sum.cancelled) parts.push(`${sum.cancelled} cancelled (run again to resume)`);
  if (sum.staleRemoved) parts.push(`${plural(sum.staleRemoved, 'stale temporary file')} of killed runs removed`);
  return `\n${(sum.failed ? s.red : s.green)(parts.join(', '))} in ${sum.seconds.toFixed(1)} s (${formatBytes(rate)}/s) → ${outDir}\n`;
}

/** `; strips '_orig_mod.' + 'module.', adds 'module.'`, or `; keeps 'module.'` when that is the net effect. */
function prefixChange(stripped: string[], added: string[]): string {
  const q = (ps: string[]): string => ps.map((p) => `'${p}'`).join(' + ');
  if (!stripped.length && !added.length) return '';
  if (stripped.join() === added.join()) return `; keeps ${q(added)}`;
  return `;${stripped.length ? ` strips ${q(stripped)}` : ''}${stripped.length && added.length ? ',' : ''}${added.length ? ` adds ${q(added)}` : ''}`;
}

/** `--dtype`'s line: what was cast, and the values that became ±Inf or ±0 (the fp16 trap). */
export function castText(c: CastSummary, s: Style): string {
  const parts = [`${plural(c.cast, 'tensor')} cast to ${c.dtype} as torch's .to() does`];
  if (c.unchanged) parts.push(`${c.unchanged} already ${c.dtype}`);
  if (c.kept) parts.push(`${c.kept} kept by --keep-dtype`);
  const lost = `${c.overflow} values overflowed to ±Inf, ${c.underflow} underflowed to 0`;
  return `${parts.join(', ')}; ${c.overflow || c.underflow ? s.yellow(lost) : lost}`;
}
