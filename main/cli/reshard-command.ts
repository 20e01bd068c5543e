import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { didYouMean } from '../../shared/did-you-mean.ts';
import { parsePreset, type Preset } from '../../shared/presets.ts';
import type { ReshardFormat, ReshardReport, ReshardRequest, ReshardTarget, ShardLayout } from '../../shared/reshard.ts';
import { CheckpointError, fail } from '../errors.ts';
import { WorkerPool } from '../jobs/pool.ts';
import { freeReplacedOutputsIn } from '../io/temp-files.ts';
import { DEFAULT_MAX_SHARD_BYTES, parseShardSize } from '../reshard/hf-shards.ts';
import { formatBytes, makeStyle, plural, reportRow, type Style } from './format-text.ts';
import { cancelOnSignal } from './cancel-on-signal.ts';
import type { CliIO } from './io.ts';
import { withTag } from '../formats/deepspeed/locate.ts';
import { castOptions } from './cast-options.ts';
import { castText, codeFreeLines } from './convert-render.ts';
import { ProgressLine } from './progress-line.ts';

export const RESHARD_HELP = `ckpt reshard <input...> --to single|ranks:N|dcp[:N]|shards[:SIZE] -o OUT [options]

Reads one checkpoint however it is spread over files and writes it spread another way. Every
output is written to a temporary place, read back and verified, and only then published.

inputs
  FILE                   a torch or safetensors file
  R0 R1 ... (or folder)  the rank files of one run: DDP copies merge when every rank holds the
                         same tensors (checked by hash); DTensor / ShardedTensor shards (FSDP
                         SHARDED_STATE_DICT) are consolidated into full tensors
  FOLDER                 a torch.distributed.checkpoint folder (.metadata + __R_N.distcp)
  FOLDER [--tag T]       a DeepSpeed ZeRO checkpoint (stage 1-3): the folder holding 'latest', a
                         tag folder (global_step*/), or a Lightning *.ckpt/ folder; consolidated
                         as DeepSpeed's zero_to_fp32 does
  X.index.json           a Hugging Face shard set (or the folder holding it)

targets (--to)
  single                 one file: torch, or safetensors with --format or a .safetensors -o
  ranks:N                N DDP rank files OUT.rank<r>.pt ('module.' keys, rank r on cuda:r)
  dcp[:N]                a DCP folder; tensors split along dim 0 over N data files (default 1)
  shards[:SIZE]          Hugging Face shards of at most SIZE (default 5GB) and their index

options
  -o, --output P         the output file (single), rank-file name (ranks) or folder (dcp, shards)
  --format F             torch | safetensors (shards default to safetensors)
  --max-shard-size S     as shards:S; 5GB = 5*10^9 bytes as Hugging Face counts, 2GiB = 2*2^30
  --preset P             single torch output: cpu | gpu[:K] | dp | ddp keys and device tags
  --take-rank R          ranks that differ merge only with this: rank R's values are written
  --dtype D              fp32 | bf16 | fp16: cast floating tensors exactly as torch's .to(dtype);
                         ints and bools untouched; reports values that overflow or underflow
  --keep-dtype RE        tensors whose dotted names match RE keep their dtype
  --keep-objects         torch outputs keep classes torch.load(weights_only=True) refuses (a whole
                         pickled model, Lightning objects); listed. Without it numpy scalars become
                         Python numbers, Namespace a dict, and other classes are refused
  --tag T                a DeepSpeed folder's tag folder to read (default: the one 'latest' names)
  --force                overwrite existing outputs
  --dry-run              show the input and output layouts; write nothing
  --json                 machine-readable progress events and report

exit codes: 0 written and verified, 1 not written (ranks differ, verification failed),
2 usage or input error`;

export function parseReshardArgs(args: string[]): (ReshardRequest & { json: boolean }) | 'help' {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      to: { type: 'string' },
      output: { type: 'string', short: 'o' },
      format: { type: 'string' },
      'max-shard-size': { type: 'string' },
      preset: { type: 'string' },
      'take-rank': { type: 'string' },
      force: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      tag: { type: 'string' },
      dtype: { type: 'string' },
      'keep-dtype': { type: 'string' },
      'keep-objects': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const usage = (m: string): never => fail('usage', m);
  if (!positionals.length) usage('name the checkpoint to re-shard: ckpt reshard <input...> --to single -o OUT');
  if (!values.to) usage('say what to re-shard to: --to single|ranks:N|dcp[:N]|shards[:SIZE]');
  const size = (text: string): number => {
    const n = parseShardSize(text);
    return typeof n === 'string' ? usage(`--max-shard-size: ${n}`) : n;
  };
  const to = values.to!;
  let target: ReshardTarget;
  let m: RegExpExecArray | null;
  if (to === 'single') target = { kind: 'single' };
  else if ((m = /^ranks:(\d+)$/.exec(to))) target = { kind: 'ranks', count: Number(m[1]) };
  else if ((m = /^dcp(?::(\d+))?$/.exec(to))) target = { kind: 'dcp', ranks: m[1] ? Number(m[1]) : 1 };
  else if ((m = /^shards(?::(.+))?$/.exec(to)))
    target = { kind: 'shards', maxShardBytes: m[1] ? size(m[1]) : values['max-shard-size'] ? size(values['max-shard-size']) : DEFAULT_MAX_SHARD_BYTES };
  else if (to === 'ranks') return usage('--to ranks needs the number of ranks: --to ranks:N, e.g. --to ranks:2');
  else return usage(`--to ${to}${didYouMean(to.replace(/:.*$/, ''), ['single', 'ranks', 'dcp', 'shards'])}: use single, ranks:N, dcp[:N] or shards[:SIZE]`);
  if ((target.kind === 'ranks' && (target.count < 1 || target.count > 4096)) || (target.kind === 'dcp' && (target.ranks < 1 || target.ranks > 4096)))
    usage('the rank count must be 1 to 4096');
  if (values['max-shard-size'] !== undefined && target.kind !== 'shards') usage('--max-shard-size goes with --to shards');
  const output = values.output ?? usage('say where to write: -o <file or folder>');
  let format: ReshardFormat;
  if (values.format !== undefined) {
    if (values.format !== 'torch' && values.format !== 'safetensors') usage(`--format ${values.format}: use torch or safetensors`);
    format = values.format as ReshardFormat;
  } else format = target.kind === 'shards' || (target.kind === 'single' && /\.safetensors$/i.test(output)) ? 'safetensors' : 'torch';
  let preset: Preset | null = null;
  if (values.preset !== undefined) {
    const p = parsePreset(values.preset, 1);
    preset = typeof p === 'string' ? usage(p) : p;
  }
  let takeRank: number | null = null;
  if (values['take-rank'] !== undefined) {
    takeRank = Number(values['take-rank']);
    if (!Number.isInteger(takeRank) || takeRank < 0) usage('--take-rank takes a rank number, e.g. --take-rank 0');
  }
  if (values.tag !== undefined && positionals.length !== 1) usage('--tag goes with one DeepSpeed checkpoint folder');
  return {
    inputs: positionals.map((i) => withTag(i, values.tag)),
    target,
    format,
    output,
    force: !!values.force,
    preset,
    takeRank,
    dryRun: !!values['dry-run'],
    json: !!values.json,
    ...(values['keep-objects'] ? { keepObjects: true } : {}),
    ...castOptions(values.dtype, values['keep-dtype']),
  };
}

export async function runReshard(args: string[], io: CliIO): Promise<number> {
  const p = parseReshardArgs(args);
  if (p === 'help') {
    io.stdout(RESHARD_HELP + '\n');
    return 0;
  }
  const { json, ...request } = p;
  // old outputs an earlier --force left to be freed in the background, where that was cut short
  freeReplacedOutputsIn(path.dirname(request.output));
  const style = makeStyle(io.color);
  const controller = new AbortController();
  const release = cancelOnSignal(controller);
  const pool = new WorkerPool(1);
  const bar = io.isTTY && !json ? new ProgressLine(io) : null;
  try {
    const report = await pool.run(
      { kind: 'reshard', request },
      {
        signal: controller.signal,
        onProgress: (pr) => {
          if (json) io.stdout(JSON.stringify({ event: 'progress', ...pr }) + '\n');
          else bar?.update(pr.done, pr.total || pr.done, `${(pr as { phase?: string }).phase ?? ''} ${pr.label ?? ''}`);
        },
      },
    );
    bar?.clear();
    io.stdout(json ? JSON.stringify({ event: 'report', report }) + '\n' : renderReshard(report, style, { withErrors: false }));
    // errors ("already exists; pass --force") go where every other command's errors go
    if (!json) for (const e of report.plan.errors) io.stderr(`ckpt: error: ${e}\n`);
    if (report.plan.errors.length) return 2;
    if (request.dryRun) return 0;
    return report.verified ? 0 : 1;
  } catch (e) {
    bar?.clear();
    if (e instanceof CheckpointError && e.kind === 'cancelled') {
      io.stderr('ckpt: cancelled: nothing was written\n');
      return 130;
    }
    throw e;
  } finally {
    release();
    await pool.close();
  }
}

/** A layout as a grid: one line per tensor, one cell per file (█ whole, ▌ a piece, ▒ a replica). */
export function renderLayout(l: ShardLayout, s: Style, maxRows = 24): string {
  const lines = [`${s.bold(l.title)}`];
  l.columns
    .slice(0, 16)
    .forEach((c, i) =>
      lines.push(
        s.dim(
          `  [${i}] ${c.file}${c.rank !== null ? `  (rank ${c.rank})` : ''}${c.role !== 'data' ? `  ${c.role}` : ''}${c.bytes ? `  ${formatBytes(c.bytes)}` : ''}`,
        ),
      ),
    );
  if (l.columns.length > 16) lines.push(s.dim(`  … ${l.columns.length - 16} more files`));
  const width = Math.min(48, Math.max(8, ...l.rows.slice(0, maxRows).map((r) => r.name.length)));
  for (const r of l.rows.slice(0, maxRows)) {
    const cells = l.columns
      .map((_, i) => {
        const ps = r.pieces.filter((x) => x.column === i);
        if (!ps.length) return '·';
        if (ps.every((x) => x.replica)) return '▒';
        return ps.some((x) => String(x.sizes) !== String(r.shape)) ? '▌' : '█';
      })
      .join('');
    const name = r.name.length > width ? '…' + r.name.slice(-(width - 1)) : r.name.padEnd(width);
    lines.push(
      `  ${name} ${cells}  ${s.dim(`${r.dtype}[${r.shape.join(', ')}]${r.spread === 'sharded' ? ` in ${r.pieces.filter((x) => !x.replica).length} pieces` : ''}`)}`,
    );
  }
  if (l.rows.length > maxRows)
    lines.push(
      s.dim(
        maxRows
          ? `  … ${plural(l.rows.length - maxRows, 'more tensor', 'more tensors')}`
          : `  ${plural(l.rows.length, 'tensor')} (--dry-run shows where each one lies)`,
      ),
    );
  if (l.items.length)
    lines.push(
      s.dim(
        `  + ${plural(l.items.length, 'non-tensor item')} (${l.items
          .slice(0, 4)
          .map((i) => i.name)
          .join(', ')}${l.items.length > 4 ? ', …' : ''})`,
      ),
    );
  return lines.join('\n');
}

export function renderReshard(r: ReshardReport, s: Style, opts: { withErrors?: boolean } = {}): string {
  const p = r.plan;
  const out: string[] = [];
  const row = (k: string, v: string): void => void out.push(reportRow(s, k, v));
  // the grids on a dry run; the titles and files otherwise
  const rows = p.request.dryRun ? 24 : 0;
  out.push(renderLayout(p.input, s, rows), '', renderLayout(p.output, s, rows), '');
  for (const a of p.aliases.slice(0, 10)) row('alias', `${a.alias} → ${a.kept} (tied: written once, recorded in __metadata__)`);
  if (p.aliases.length > 10) row('alias', `… ${p.aliases.length - 10} more`);
  for (const d of p.dropped.slice(0, 10)) row('not kept', s.yellow(`${d.name || '(top)'}: ${d.reason}`));
  if (p.dropped.length > 10) row('not kept', s.yellow(`… ${p.dropped.length - 10} more items the target cannot hold`));
  for (const w of p.warnings) row('note', w);
  if (opts.withErrors ?? true) for (const e of p.errors) row('error', s.red(e));
  if (r.differing.length) {
    row('differ', s.yellow(`${plural(r.differing.length, 'tensor')} or values are not the same on every rank:`));
    for (const d of r.differing.slice(0, 20)) out.push(`          ${d.name}: ${d.reason}${d.ranks.length ? ` (rank ${d.ranks.join(', ')})` : ''}`);
    if (r.differing.length > 20) out.push(`          … ${r.differing.length - 20} more`);
    if (!r.written && !r.outputs.length)
      out.push(
        s.yellow(
          "          not merged: these ranks are not copies of each other; pass --take-rank R to write rank R's values, or re-shard each rank on its own",
        ),
      );
  }
  for (const o of r.outputs) {
    const verdict = o.verified ? s.green(`verified: ${plural(o.tensors, 'tensor')} read back equal to the source`) : s.red(`NOT verified: ${o.mismatch}`);
    row('written', `${o.file}  ${formatBytes(o.bytes)}  ${verdict}`);
  }
  if (r.cast) row('dtype', castText(r.cast, s));
  if (p.codeFree) out.push(...codeFreeLines(p.codeFree, s));
  if (r.pieceChecks)
    row(
      'pieces',
      `${plural(r.pieceChecks, 'piece')} cut back out of the written tensors ${r.pieceChecks === 1 ? 'matches its source file' : 'match their source files'}`,
    );
  if (p.request.dryRun) row('dry run', 'nothing was written');
  else if (r.outputs.length)
    out.push(s.dim(`          ${r.seconds.toFixed(2)} s, ${formatBytes(r.bytesCopied)} copied${r.written ? '' : '; nothing was published'}`));
  return out.join('\n') + '\n';
}
