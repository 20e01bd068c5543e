import { parseArgs } from 'node:util';
import type { FitReport } from '../../shared/fit.ts';
import { parseRename } from '../../shared/presets.ts';
import { fail } from '../errors.ts';
import type { Rename } from '../fit/convert-fit.ts';
import { fitCheckpoint } from '../fit/convert-fit.ts';
import { listText } from '../fit/fit.ts';
import { makeStyle, plural, reportRow, type Style } from './format-text.ts';
import type { CliIO } from './io.ts';

export const FIT_HELP = `ckpt fit <checkpoint> <target> [--json] [--rename 'RE=>SUB' ...]

Will it load into my model? Says what model.load_state_dict(sd, strict=True) would report, in
torch's words, the rules that make it load, and what it would report after them.

target (the model the checkpoint must load into)
  a checkpoint           any readable format, e.g. torch.save(model.state_dict()) of a fresh model
  model.onnx             an ONNX graph: its parameter names and shapes
  error.txt              torch's load_state_dict error, pasted as it was printed
  shapes.txt             'key shape' lines: print(k, v.shape) output, [8, 3, 3, 3], (8, 3, 3, 3), 8x3x3x3

rules it proposes
  wrapper prefixes removed or added at any depth (module., _orig_mod., model., _forward_module.,
  _checkpoint_wrapped_module., backbone., a prefix every key shares); the model state dict taken
  out of its container; renames by module structure, shape, order and name, with a confidence;
  heads of another size left out and named. It never guesses between equal candidates: it asks.

  --rename 'RE=>SUB'   renames the checkpoint's keys first (repeatable): settles what it asks,
                       e.g. --rename '^proj\\.=>query.'
  ckpt convert <checkpoint> --fit <target> [--rename ...] -o OUT   applies them, writes a verified file

--json: {missing, unexpected, mismatched, message, rules, ambiguous, after, fits, loadsNonStrict, mapping, notes}
exit codes: 0 it loads (after the rules), 1 it does not, 2 usage or input error`;

export async function runFit(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, rename: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(FIT_HELP + '\n');
    return 0;
  }
  if (positionals.length !== 2) fail('usage', 'fit takes a checkpoint and a target: ckpt fit <checkpoint> <target>');
  const renames = (values.rename ?? []).map((r) => {
    const parsed = parseRename(r);
    return typeof parsed === 'string' ? fail('usage', parsed) : parsed;
  });
  const report = fitCheckpoint(positionals[0]!, positionals[1]!, renames);
  io.stdout(values.json ? JSON.stringify(report) + '\n' : renderFit(report, makeStyle(io.color)));
  return report.fits || report.message === null ? 0 : 1;
}

export function renderFit(r: FitReport, s: Style): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(reportRow(s, k, v));
  row('source', r.source);
  row('target', `${r.target.file}  (${r.target.kind}, ${plural(r.target.keys, 'key')}${r.target.className ? `, ${r.target.className}` : ''})`);
  row(
    'now',
    r.message === null
      ? s.green('loads with strict=True')
      : s.red(`strict=True fails: ${r.missing.length} missing, ${r.unexpected.length} unexpected, ${r.mismatched.length} size mismatches`),
  );
  if (r.message) for (const l of torchLines(r.message)) lines.push(s.dim(`          ${l}`));
  for (const rule of r.rules) row('rule', rule.text);
  for (const a of r.ambiguous) row('ask', s.yellow(a.text));
  const a = r.after;
  if (r.rules.length || r.ambiguous.length) {
    row(
      'after',
      r.fits
        ? s.green('loads with strict=True')
        : r.loadsNonStrict
          ? s.yellow(`loads with strict=False; missing ${listText(a.missing)}`)
          : s.red(`still fails: ${a.missing.length} missing, ${a.unexpected.length} unexpected, ${a.mismatched.length} size mismatches`),
    );
    if (a.message && !r.loadsNonStrict) for (const l of torchLines(a.message)) lines.push(s.dim(`          ${l}`));
  }
  for (const n of r.notes) row('note', n);
  if (r.fits || r.loadsNonStrict) lines.push(s.dim(`          ckpt convert ${r.source} --fit ${r.target.file} -o OUT  writes it`));
  return lines.join('\n') + '\n';
}

/** torch's message, one line per complaint, long key lists shortened. */
function torchLines(message: string): string[] {
  return message.split('\n\t').map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
}

/** `ckpt convert <ckpt> --fit <target> -o OUT`: the fit, then the verified conversion. */
export async function runConvertFit(
  input: string,
  targetFile: string,
  p: { output: string | null; force: boolean; dryRun: boolean; json: boolean; renames: Rename[] },
  io: CliIO,
): Promise<number> {
  const style = makeStyle(io.color);
  if (p.dryRun) {
    const fit = fitCheckpoint(input, targetFile, p.renames);
    io.stdout(p.json ? JSON.stringify({ event: 'fit', fit }) + '\n' : renderFit(fit, style));
    return fit.fits || fit.loadsNonStrict ? 0 : 1;
  }
  const { convertToFit } = await import('../fit/convert-fit.ts');
  const { cancelOnSignal } = await import('./cancel-on-signal.ts');
  const { renderReport } = await import('./convert-render.ts');
  const controller = new AbortController();
  const release = cancelOnSignal(controller);
  try {
    const { fit, report } = await convertToFit(input, targetFile, { output: p.output!, force: p.force, signal: controller.signal, renames: p.renames });
    if (p.json) {
      io.stdout(JSON.stringify({ event: 'fit', fit }) + '\n');
      io.stdout(JSON.stringify({ event: 'report', report }) + '\n');
    } else {
      io.stdout(renderFit(fit, style));
      io.stdout(renderFitChanges(fit, style));
      io.stdout(renderReport(report, style));
      io.stdout(`${reportRow(style, 'load it', `model.load_state_dict(torch.load(f), strict=${fit.fits ? 'True' : 'False'})`)}\n`);
    }
    return report.verified ? 0 : 1;
  } finally {
    release();
  }
}

/** Every rename, every key left out and every key left missing. */
function renderFitChanges(r: FitReport, s: Style): string {
  const lines: string[] = [];
  for (const m of r.mapping) if (m.to !== m.from) lines.push(`          ${m.from} ${s.dim('→')} ${m.to ?? s.red('(left out)')}`);
  for (const k of r.after.missing) lines.push(`          ${s.yellow('(missing)')} ${k}`);
  return lines.length ? `${reportRow(s, 'keys', `${lines.length} changed or missing`)}\n${lines.join('\n')}\n` : '';
}
