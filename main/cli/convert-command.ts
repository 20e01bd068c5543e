import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import type { BatchPlanItem } from '../../shared/api.ts';
import type { ConversionPlan } from '../../shared/convert.ts';
import { NO_RULES, parseMapLocation, parsePreset, parseRename, regexError, type ConversionRules } from '../../shared/presets.ts';
import { removeStaleTempFiles } from '../io/temp-files.ts';
import * as path from 'node:path';
import { runBatch, type BatchEvent } from '../jobs/batch.ts';
import { previewConversion } from '../convert/convert-file.ts';
import { asCheckpointError, CheckpointError, fail } from '../errors.ts';
import { isDcpFolder } from '../formats/dcp/dcp.ts';
import { isDeepSpeedFolder } from '../formats/deepspeed/locate.ts';
import { CONVERT_WORKER, WorkerPool } from '../jobs/pool.ts';
import type { ConvertJobRequest, ConvertJobResults } from '../jobs/convert-job.ts';
import { delayTurbofanForBatch, tuneV8ForCli, withV8DefaultsWhileLoading } from './v8-tuning.ts';
import { cancelOnSignal } from './cancel-on-signal.ts';
import { renderBatchLine, renderBatchSummary, renderPlan, renderReport } from './convert-render.ts';
import { makeStyle, plural } from './format-text.ts';
import type { CliIO } from './io.ts';
import { withTag } from '../formats/deepspeed/locate.ts';
import { castOptions } from './cast-options.ts';
import { writeJsonInPieces, type LongList } from './json-pieces.ts';
import { checksIn, keyChangePieces } from '../convert/packed-report.ts';
import { checksHaveUtf8, checksUtf8, keyChangesHaveUtf8, keyChangeUtf8Pieces } from '../convert/packed-report-utf8.ts';
import { ProgressLine } from './progress-line.ts';

export const CONVERT_HELP = `ckpt convert <file|folder> --preset cpu|gpu[:K]|dp|ddp [options]

Converts a checkpoint to the layout you need and verifies every tensor of the result.

presets
  cpu              wrapper prefixes ('module.', '_orig_mod.') removed, all tensors on cpu
  gpu[:K]          prefixes removed, all on cuda:K (default 0)
  dp               exactly one 'module.' prefix, all on cuda:0 (nn.DataParallel)
  ddp              one 'module.' prefix, rank r on cuda:r; --world-size N writes N files

options
  -o, --output P         output file; without it, beside the input as <name>.<preset><ext>
                         (model.pt → model.cpu.pt). Converting a folder needs -o <folder>
  --world-size N         ranks for the ddp preset (files <name>.rank<r>.pth); default 1
  --strip-prefix P       remove P from the start of keys (repeatable)
  --add-prefix P         add P to the start of every key
  --rename 'RE=>SUB'     regex rename of keys (repeatable)
  --include RE           keep only keys matching RE
  --exclude RE           drop keys matching RE (e.g. '^fc\\.')
  --map-location A=B     device remap as torch.load's map_location dict (repeatable; *=cpu)
  --unwrap               write only the model state dict of a {'state_dict': ...} container
  --export-state-dict    write a whole pickled module as a plain state dict
  --keep-objects         keep classes torch.load(weights_only=True) refuses (the report lists them);
                         without it outputs hold only allowlisted globals. Dangerous sources are
                         refused unless --unwrap or --export-state-dict takes only their tensors
  --fit TARGET           fit to a model (a checkpoint, model.onnx, torch's pasted load_state_dict
                         error, or 'key shape' lines): the rules \`ckpt fit\` proposes, applied;
                         writes the model state dict alone, on cpu, in the model's key order
  --dtype D              fp32 | bf16 | fp16: cast floating tensors exactly as torch's .to(dtype)
                         (ints and bools untouched); counts values that overflow to ±Inf or
                         underflow to 0
  --keep-dtype RE        tensors whose names match RE keep their dtype (e.g. 'norm')
  --tag T                a DeepSpeed folder's tag folder (default: the one 'latest' names)
  --force                overwrite existing outputs
  --jobs N               worker threads for folders (default: number of cores); each
                         starts the next file while one waits on its fsync
  --shard I/N            convert only share I of N of a folder (for cluster job arrays)
  --clean-stale          first remove stale temporary files (untouched for an hour, left by
                         killed runs) anywhere under the output folder; see ckpt clean
  --dry-run              show the plan; write nothing
  --json                 machine-readable events and report

exit codes: 0 converted and verified, 1 some files failed, 2 usage or input error`;

interface Parsed {
  input: string;
  output: string | null;
  rules: ConversionRules;
  force: boolean;
  jobs: number;
  dryRun: boolean;
  json: boolean;
  shard?: { index: number; count: number };
  /** --fit TARGET */
  fit?: string;
  /** said on stderr before anything runs (defaults the user did not choose) */
  notes: string[];
  cleanStale: boolean;
}

export function parseConvertArgs(args: string[]): Parsed | 'help' {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      preset: { type: 'string' },
      'world-size': { type: 'string' },
      output: { type: 'string', short: 'o' },
      'strip-prefix': { type: 'string', multiple: true },
      'add-prefix': { type: 'string' },
      rename: { type: 'string', multiple: true },
      include: { type: 'string' },
      exclude: { type: 'string' },
      'map-location': { type: 'string', multiple: true },
      unwrap: { type: 'boolean' },
      'export-state-dict': { type: 'boolean' },
      'keep-objects': { type: 'boolean' },
      force: { type: 'boolean' },
      jobs: { type: 'string' },
      shard: { type: 'string' },
      fit: { type: 'string' },
      'clean-stale': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      tag: { type: 'string' },
      dtype: { type: 'string' },
      'keep-dtype': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const notes: string[] = [];
  if (positionals.length !== 1) fail('usage', 'convert takes one file or folder: ckpt convert <file|folder> --preset cpu');
  const usage = (msg: string): never => fail('usage', msg);
  const worldSize = values['world-size'] !== undefined ? Number(values['world-size']) : 1;
  if (values['world-size'] !== undefined && values.preset !== 'ddp') usage('--world-size goes with --preset ddp');
  const preset = values.preset !== undefined ? parsePreset(values.preset, worldSize) : null;
  if (typeof preset === 'string') usage(preset);
  if (preset !== null && typeof preset !== 'string' && preset.name === 'ddp' && values['world-size'] === undefined)
    notes.push("--preset ddp without --world-size writes 1 rank (rank 0 on cuda:0, 'module.' keys); add --world-size N for N rank files");
  const renames = (values.rename ?? []).map((r) => {
    const p = parseRename(r);
    return typeof p === 'string' ? usage(p) : p;
  });
  const mapLocation = (values['map-location'] ?? []).map((m) => {
    const p = parseMapLocation(m);
    return typeof p === 'string' ? usage(p) : p;
  });
  for (const re of [values.include, values.exclude]) if (re !== undefined && regexError(re)) usage(regexError(re)!);
  const rules: ConversionRules = {
    ...NO_RULES,
    preset: preset as ConversionRules['preset'],
    stripPrefixes: values['strip-prefix'] ?? [],
    addPrefix: values['add-prefix'] ?? null,
    renames,
    include: values.include ?? null,
    exclude: values.exclude ?? null,
    mapLocation,
    unwrap: !!values.unwrap,
    exportStateDict: !!values['export-state-dict'],
    ...(values['keep-objects'] ? { keepObjects: true } : {}),
    ...castOptions(values.dtype, values['keep-dtype']),
  };
  const custom =
    rules.castTo ||
    rules.stripPrefixes.length ||
    rules.addPrefix ||
    renames.length ||
    rules.include ||
    rules.exclude ||
    mapLocation.length ||
    rules.unwrap ||
    rules.exportStateDict;
  if (values.fit !== undefined) {
    if (
      rules.preset ||
      rules.stripPrefixes.length ||
      rules.addPrefix ||
      rules.include ||
      rules.exclude ||
      mapLocation.length ||
      rules.unwrap ||
      rules.exportStateDict
    )
      usage('--fit computes its own rules; only --rename goes with it (to settle what it asks)');
    if (!values.output) usage('--fit needs an output file: -o OUT');
    return {
      input: positionals[0]!,
      output: values.output ?? null,
      rules,
      force: !!values.force,
      jobs: 1,
      dryRun: !!values['dry-run'],
      json: !!values.json,
      fit: values.fit,
      notes: [],
      cleanStale: false,
    };
  }
  if (!rules.preset && !custom) usage('say what to convert to: --preset cpu|gpu[:K]|dp|ddp, or custom rules (see ckpt help convert)');
  const jobs = values.jobs !== undefined ? Number(values.jobs) : (os.availableParallelism?.() ?? os.cpus().length);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 256) usage('--jobs takes a whole number from 1 to 256');
  let shard: Parsed['shard'];
  if (values.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(values.shard);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) usage('--shard takes I/N with 1 ≤ I ≤ N, e.g. --shard 3/8');
    shard = { index: Number(m![1]), count: Number(m![2]) };
  }
  return {
    input: withTag(positionals[0]!, values.tag),
    output: values.output ?? null,
    rules,
    force: !!values.force,
    jobs,
    dryRun: !!values['dry-run'],
    json: !!values.json,
    notes,
    cleanStale: !!values['clean-stale'],
    ...(shard ? { shard } : {}),
  };
}

export async function runConvert(args: string[], io: CliIO): Promise<number> {
  const p = parseConvertArgs(args);
  if (p === 'help') {
    io.stdout(CONVERT_HELP + '\n');
    return 0;
  }
  for (const n of p.notes) io.stderr(`note: ${n}\n`);
  let st: fs.Stats;
  try {
    st = fs.statSync(p.input);
  } catch {
    fail('io', `${p.input}: no such file or folder`, p.input);
  }
  if (p.fit !== undefined) return (await import('./fit-command.ts')).runConvertFit(p.input, p.fit, { ...p, renames: p.rules.renames }, io);
  // a distributed-checkpoint folder is one checkpoint, not a folder of them (issue 7)
  return st.isDirectory() && !isDcpFolder(p.input) && !isDeepSpeedFolder(p.input) ? convertFolder(p, io) : convertOne(p, io);
}

async function convertOne(p: Parsed, io: CliIO): Promise<number> {
  const style = makeStyle(io.color);
  if (p.shard) fail('usage', '--shard applies to folders');
  if (p.dryRun) {
    const plan = previewConversion(p.input, p.rules, p.output);
    io.stdout(p.json ? JSON.stringify({ event: 'plan', plan }) + '\n' : renderPlan(plan, style, true));
    return plan.errors.length ? 2 : 0;
  }
  // temporary files a killed earlier run left beside the output are removed once stale
  removeStaleTempFiles(path.dirname(path.resolve(p.output ?? p.input)));
  const controller = new AbortController();
  const release = cancelOnSignal(controller);
  // the thread of convert-worker.js (the conversion jobs only, half the app worker's code to load),
  // loading Node's own modules from its code cache under V8's default flags (see v8-tuning.ts)
  const pool = withV8DefaultsWhileLoading(() => new WorkerPool<ConvertJobRequest, ConvertJobResults>(1, CONVERT_WORKER), tuneV8ForCli);
  const bar = io.isTTY && !p.json ? new ProgressLine(io) : null;
  let lastPlain = 0;
  try {
    const report = await pool.run(
      { kind: 'convert', source: p.input, output: p.output, rules: p.rules, force: p.force },
      {
        signal: controller.signal,
        onProgress: (pr) => {
          if (p.json) io.stdout(JSON.stringify({ event: 'progress', file: p.input, ...pr }) + '\n');
          else if (bar) bar.update(pr.done, pr.total, pr.label ?? '');
          else if (pr.total > 64 << 20 && pr.done - lastPlain >= pr.total / 10) {
            lastPlain = pr.done;
            io.stdout(`converting ${p.input}: ${Math.floor((100 * pr.done) / pr.total)}%\n`);
          }
        },
      },
    );
    bar?.clear();
    // the worker's heap (what the conversion made, mostly garbage not yet collected: 200 MB for
    // 100,000 tensors) is given back while the report is written: its thread is torn down on the
    // other core (20-30 ms) as the report, a piece of a few MB at a time, is written here
    const closing = pool.close();
    if (p.json)
      await writeJsonInPieces(
        { event: 'report', report },
        // the per-tensor parts, packed by the worker: each output's checks and each state dict's key changes
        [
          ...report.outputs.map(
            (o): LongList => ({
              at: o.checks,
              length: o.checks.count,
              items: (from, to) => checksIn(o.checks, from, to),
              ...(checksHaveUtf8(o.checks) ? { utf8: (from: number, to: number) => checksUtf8(o.checks, from, to) } : {}),
            }),
          ),
          ...report.plan.stateDicts.map(
            (sd): LongList => ({
              at: sd.keys,
              length: sd.keys.count,
              items: keyChangePieces(sd.keys),
              ...(keyChangesHaveUtf8(sd.keys) ? { utf8: keyChangeUtf8Pieces(sd.keys) } : {}),
            }),
          ),
        ],
        io.stdout,
        io.stdoutRoom,
        io.stdoutBytes,
      );
    else io.stdout(renderReport(report, style));
    await closing;
    return report.verified ? 0 : 1;
  } catch (e) {
    bar?.clear();
    if (e instanceof CheckpointError && e.kind === 'cancelled') {
      io.stderr(`ckpt: cancelled: ${p.input}: nothing was written\n`);
      return 130;
    }
    throw e;
  } finally {
    release();
    await pool.close();
  }
}

async function convertFolder(p: Parsed, io: CliIO): Promise<number> {
  const style = makeStyle(io.color);
  if (!p.output) fail('usage', `converting a folder needs an output folder: -o <folder>`);
  if (p.dryRun) {
    const { planBatch } = await import('../jobs/batch.ts');
    const { items, ignored, units } = planBatch({ input: p.input, outDir: p.output, rules: p.rules, force: p.force, ...(p.shard ? { shard: p.shard } : {}) });
    // Each file is previewed with its own unit's rules (under ddp, rank r of a family goes to cuda:r),
    // and a file already failing at discovery (unreadable, vanished) is listed with its reason.
    const output = p.output;
    type DryRunRow = { item: BatchPlanItem; plan: ConversionPlan } | { item: BatchPlanItem; error: string };
    const plans = items.flatMap((item, i): DryRunRow[] => {
      const unit = units[i];
      if (item.status === 'failed') return [{ item, error: item.reason ?? 'cannot be read' }];
      if (item.status !== 'pending' || !unit) return [];
      const source = path.join(p.input, unit.source);
      try {
        return [{ item, plan: previewConversion(source, unit.rules, path.join(output, item.outputs[0] ?? unit.output)) }];
      } catch (e) {
        return [{ item, error: asCheckpointError(e, source).message }];
      }
    });
    if (p.json) io.stdout(JSON.stringify({ event: 'plan', items, ignored, plans }) + '\n');
    else {
      io.stdout(
        `${plural(items.length, 'checkpoint')} found (${ignored} other files ignored); ${items.filter((i) => i.status === 'skipped').length} already done\n\n`,
      );
      for (const x of plans) io.stdout('error' in x ? `${style.red('error')} ${x.item.sources[0]}: ${x.error}\n` : renderPlan(x.plan!, style, false) + '\n');
    }
    return plans.some((x) => 'error' in x || x.plan!.errors.length) ? 2 : 0;
  }
  const controller = new AbortController();
  const release = cancelOnSignal(controller);
  // the threads load Node's own modules from its code cache under V8's default flags; the batch's flags follow
  const pool = withV8DefaultsWhileLoading(
    () => new WorkerPool<ConvertJobRequest, ConvertJobResults>(p.jobs, CONVERT_WORKER),
    () => {
      tuneV8ForCli();
      delayTurbofanForBatch();
    },
  );
  const bar = io.isTTY && !p.json ? new ProgressLine(io) : null;
  const t0 = performance.now();
  let finished = 0;
  let total = 0;
  try {
    const summary = await runBatch(
      {
        input: p.input,
        outDir: p.output,
        rules: p.rules,
        force: p.force,
        cleanStale: p.cleanStale,
        signal: controller.signal,
        ...(p.shard ? { shard: p.shard } : {}),
        onEvent: (e: BatchEvent) => {
          if (p.json) return io.stdout(JSON.stringify({ event: e.type, ...e, type: undefined }) + '\n');
          if (e.type === 'plan') {
            total = e.items.filter((i) => i.status === 'pending').length;
            const skipped = e.items.length - total;
            io.stdout(`${e.items.length} checkpoints found, ${total} to convert${skipped ? `, ${skipped} already done` : ''}, ${plural(p.jobs, 'worker')}\n`);
          } else if (e.type === 'progress' && bar) {
            bar.update(e.overallDone, e.overallTotal, `${finished}/${total} files`, (performance.now() - t0) / 1000);
          } else if (e.type === 'item') {
            finished++;
            bar?.clear();
            io.stdout(renderBatchLine(e.item, style) + '\n');
          }
        },
      },
      pool,
    );
    bar?.clear();
    if (!p.json) io.stdout(renderBatchSummary(summary, p.output, style));
    if (summary.warning) io.stderr(`ckpt: warning: ${summary.warning}\n`);
    if (summary.cancelled) return 130;
    return summary.failed ? 1 : 0;
  } finally {
    release();
    await pool.close();
  }
}
