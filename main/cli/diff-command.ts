import { parseArgs } from 'node:util';
import type { DiffReport } from '../../shared/diff.ts';
import { diffCheckpoints } from '../diff/diff.ts';
import { fail } from '../errors.ts';
import { makeStyle, plural, reportRow, type Style } from './format-text.ts';
import type { CliIO } from './io.ts';

export const DIFF_HELP = `ckpt diff <a> <b> [--json] [--exact-keys]

What changed between two checkpoints: files of any format, DCP folders, shard sets, FSDP rank
families. Keys are compared after wrapper prefixes (module., _orig_mod., Lightning's model.) are
removed; --exact-keys compares them as they are. Per tensor: dtype, shape, equal bytes; for
numbers that differ: max |Δ|, max relative Δ, mean |Δ|, cosine, NaN/Inf appearing. Plain values
(epoch, learning rate, hyper-parameters) are listed old → new. Tensors are streamed.

--json: {verdict, onlyInA, onlyInB, changed [{key, reason, maxAbsDiff, maxRelDiff, cosine, ...}], identical, values, ...}
exit codes: 0 identical (or the same tensors in another layout), 1 different, 2 input error`;

export async function runDiff(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, 'exact-keys': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(DIFF_HELP + '\n');
    return 0;
  }
  if (positionals.length !== 2) fail('usage', 'diff takes two checkpoints: ckpt diff <a> <b>');
  const report = await diffCheckpoints(positionals[0]!, positionals[1]!, { exactKeys: !!values['exact-keys'] });
  io.stdout(values.json ? JSON.stringify(report) + '\n' : renderDiff(report, makeStyle(io.color)));
  return report.verdict === 'different' ? 1 : 0;
}

const num = (x: number | null): string => (x === null ? '-' : x === 0 ? '0' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toPrecision(4) : x.toExponential(3));

export function renderDiff(r: DiffReport, s: Style): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(reportRow(s, k, v));
  row('a', `${r.a}${r.prefixesA.length ? s.dim(`  (prefixes ${r.prefixesA.join(' + ')} removed)`) : ''}`);
  row('b', `${r.b}${r.prefixesB.length ? s.dim(`  (prefixes ${r.prefixesB.join(' + ')} removed)`) : ''}`);
  const verdict =
    r.verdict === 'identical'
      ? s.green('identical')
      : r.verdict === 'layout-only'
        ? s.green('layout only: the same tensors under other keys, devices or containers')
        : s.red(r.changed.length || r.values.length ? 'different: values changed' : 'different: keys added or removed');
  row('verdict', verdict);
  row('counts', `${r.identical} identical, ${r.changed.length} changed, ${r.onlyInA.length} only in a, ${r.onlyInB.length} only in b`);
  for (const c of r.changed) {
    const what =
      c.reason === 'shape'
        ? `shape [${c.shapeA.join(', ')}] → [${c.shapeB.join(', ')}]`
        : `${c.reason.startsWith('dtype') ? `${c.dtypeA} → ${c.dtypeB}; ` : ''}max|Δ| ${num(c.maxAbsDiff)}  rel ${num(c.maxRelDiff)}  mean|Δ| ${num(c.meanAbsDiff)}  cos ${c.cosine === null ? '-' : c.cosine.toFixed(6)}  ${c.differing} differ${c.nanAppeared ? s.red(`  ${c.nanAppeared} NaN new`) : ''}${c.infAppeared ? s.red(`  ${c.infAppeared} Inf new`) : ''}`;
    row('changed', `${c.key}  ${what}`);
  }
  for (const k of r.onlyInA) row('only a', k);
  for (const k of r.onlyInB) row('only b', k);
  for (const v of r.values) row('value', `${v.path}: ${v.a ?? '(none)'} → ${v.b ?? '(none)'}`);
  if (r.devicesChanged.length)
    row(
      'devices',
      `${plural(r.devicesChanged.length, 'tensor')} on other devices (e.g. ${r.devicesChanged[0]!.key}: ${r.devicesChanged[0]!.a} → ${r.devicesChanged[0]!.b})`,
    );
  return lines.join('\n') + '\n';
}
