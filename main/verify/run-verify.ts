/**
 * One verification: bind the checkpoint(s) to the graph, run every variant of the graph on the
 * same batches of the test set, score and compare. The candidate is `checkpoint`; its reference is
 * `against` when given, else the graph's own (exported) weights. Runs in the calling thread: the
 * job worker calls it, and so do tests. Cancellation is checked between batches.
 */
import * as fs from 'node:fs';
import type { InferenceSession } from 'onnxruntime-node';
import type { Progress } from '../../shared/convert.ts';
import type { Preprocess, RunResult, Verdict, VerifyOptions, VerifyReport } from '../../shared/verify.ts';
import { asCheckpointError, CheckpointError, fail } from '../errors.ts';
import { planBindings, type RunWeights } from './bind.ts';
import { openWeights, type CheckpointWeights } from './checkpoint-weights.ts';
import { LogitComparison, RunScore } from './metrics.ts';
import { loadOnnxModel } from '../formats/onnx/onnx-model.ts';
import { rewriteModel } from './onnx-rewrite.ts';
import { preprocessInto, resolvePreprocess, sampleSize, shapeHint } from './preprocess.ts';
import { pickExamples } from './sample-images.ts';
import { parseDevice, sessionsFor, loadOrt } from './session.ts';
import { openTestSet, type TestSet } from './test-set.ts';

export interface VerifyContext {
  onProgress?(p: Progress): void;
  cancelled?(): boolean;
  /** the Python runner's chunk of samples, in bytes (tests use small chunks to cross chunk boundaries) */
  chunkBytes?: number;
}

export const DEFAULT_ATOL = 1e-4;
export const DEFAULT_RTOL = 1e-4;
const DEFAULT_BATCH = 64;

interface Variant {
  label: string;
  file: string | null;
  weights: CheckpointWeights | null;
  session: InferenceSession;
  /** made once the first batch tells the number of classes */
  score: RunScore | null;
  seconds: number;
  logits: Float32Array;
}

/** The report's `data` section: the test set as read, and the preprocessing every run used. */
export function dataReport(set: TestSet, count: number, classes: number, pre: Preprocess): VerifyReport['data'] {
  const { layout, channels, height, width, resize, scale, mean, std } = pre;
  return {
    path: set.path,
    format: set.format,
    samples: count,
    classes,
    classNames: set.classNames,
    preprocess: { layout, channels, height, width, resize, scale, mean, std },
    notes: set.notes,
  };
}

/** `--batch-size`, or the default. */
export function batchSizeOption(opts: VerifyOptions): number {
  const batch = opts.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(batch) || batch < 1 || batch > 1 << 16) fail('usage', '--batch-size takes a whole number from 1 to 65536');
  return batch;
}

/** Every label of the first `count` samples names one of the model's `classes` outputs. */
export function checkLabels(labels: Int32Array, count: number, classes: number, data: string): void {
  for (let i = 0; i < count; i++)
    if (labels[i]! < 0 || labels[i]! >= classes) fail('usage', `${data}: sample ${i} has label ${labels[i]} but the model outputs ${classes} classes`, data);
}

export function exists(file: string, what: string): void {
  try {
    fs.statSync(file);
  } catch (e) {
    const err = asCheckpointError(e, file);
    fail(err.kind, `${what} ${err.message}`, file);
  }
}

export async function runVerify(opts: VerifyOptions, ctx: VerifyContext = {}): Promise<VerifyReport> {
  if (opts.modelClass) return (await import('./run-verify-python.ts')).runVerifyPython(opts, ctx);
  const t0 = performance.now();
  const device = parseDevice(opts.device);
  const atol = opts.atol ?? DEFAULT_ATOL;
  const rtol = opts.rtol ?? DEFAULT_RTOL;
  if (!(atol >= 0) || !(rtol >= 0)) fail('usage', '--atol and --rtol must be zero or positive numbers');
  const batchOpt = batchSizeOption(opts);
  for (const [f, what] of [
    [opts.model, 'the graph'],
    [opts.data, 'the test set'],
    [opts.checkpoint, 'the checkpoint'],
    ...(opts.against ? [[opts.against, 'the source checkpoint']] : []),
  ] as const)
    exists(f, `${what}:`);
  const progress = (done: number, total: number, label: string): void => ctx.onProgress?.({ done, total, unit: 'samples', label });
  progress(0, 0, 'reading the graph and the checkpoints');

  const model = loadOnnxModel(opts.model);
  const initNames = new Set(model.initializers.map((t) => t.name));
  const input = model.inputs.find((i) => !initNames.has(i.name));
  const output = model.outputs[0];
  if (!input || !output) fail('usage', `${opts.model}: the graph has no input or no output`, opts.model);
  if (input.elemType !== null && input.elemType !== 1)
    fail('unsupported', `${opts.model}: the graph's input ${input.name} is not float32; verify feeds float32 images`, opts.model);
  const extraInputs = model.inputs.filter((i) => !initNames.has(i.name)).length - 1;
  if (extraInputs > 0) fail('unsupported', `${opts.model}: the graph takes ${extraInputs + 1} inputs; verify feeds one image tensor`, opts.model);

  const opened: CheckpointWeights[] = [];
  const built: Variant[] = [];
  try {
    const runs: RunWeights[] = [];
    opened.push(openWeights(opts.checkpoint));
    runs.push({ label: 'checkpoint', weights: opened[0]! });
    if (opts.against) {
      opened.push(openWeights(opts.against));
      runs.push({ label: 'against', weights: opened[1]! });
    }
    const plan = planBindings(model, runs, { trustNames: !!opts.trustNames, ...(opts.bnEps !== undefined ? { bnEps: opts.bnEps } : {}) });

    const dims = input.dims ?? [];
    const set = openTestSet(opts.data, opts.dataFormat, shapeHint(input, opts.preprocess));
    const count = Math.min(set.count, opts.limit ?? Infinity);
    if (count < 1) fail('usage', `${opts.data}: the test set is empty`, opts.data);
    const pre = resolvePreprocess(input, set.sample(0), opts.preprocess);
    const fixedBatch = typeof dims[0] === 'number' && dims[0] > 0 ? dims[0] : null;
    const batch = fixedBatch ?? Math.min(batchOpt, count);
    if (pre.rank === 3 && pre.channels !== 1) fail('usage', `the graph takes N×H×W (one channel) but ${pre.channels} channels were asked for`);

    // sessions: candidate, then reference
    progress(0, count, 'loading onnxruntime');
    await loadOrt();
    const variants: { label: string; file: string | null; weights: CheckpointWeights | null; bytes: Uint8Array }[] = [
      { label: 'checkpoint', file: opts.checkpoint, weights: opened[0]!, bytes: rewriteModel(model, plan.replacements.get('checkpoint')!) },
      opts.against
        ? { label: 'against', file: opts.against, weights: opened[1]!, bytes: rewriteModel(model, plan.replacements.get('against')!) }
        : { label: 'graph', file: null, weights: null, bytes: model.initializers.some((t) => t.external) ? rewriteModel(model, new Map()) : model.bytes },
    ];
    const { sessions, firstSession } = await sessionsFor(device, variants[0]!.bytes);
    for (const v of variants) {
      const session = built.length === 0 ? firstSession : await sessions.create(v.bytes);
      built.push({ label: v.label, file: v.file, weights: v.weights, session, score: null, seconds: 0, logits: new Float32Array(0) });
    }
    variants.length = 0; // the rewritten models are no longer needed

    // classes from the first batch's output width
    const per = sampleSize(pre);
    const shape =
      pre.rank === 4
        ? pre.layout === 'NCHW'
          ? [pre.channels, pre.height, pre.width]
          : [pre.height, pre.width, pre.channels]
        : pre.rank === 3
          ? [pre.height, pre.width]
          : [per];
    const ort = await loadOrt();
    const inputBuf = new Float32Array(batch * per);
    let classes = 0;
    let comparison: LogitComparison | null = null;
    const labels = set.labels;
    for (let start = 0, b = 0; start < count; start += batch, b++) {
      if (ctx.cancelled?.()) throw new CheckpointError('cancelled', `verification cancelled after ${start} of ${count} samples`);
      const n = Math.min(batch, count - start);
      const rows = fixedBatch ?? n;
      // every sample overwrites its own rows; only a fixed batch's unused rows (the last batch) are zeroed
      if (rows > n) inputBuf.fill(0, n * per);
      for (let s = 0; s < n; s++) preprocessInto(set.sample(start + s), pre, inputBuf, s * per);
      const feed = { [input.name]: new ort.Tensor('float32', inputBuf.subarray(0, rows * per), [rows, ...shape]) };
      for (const v of built) {
        // the first call initialises kernels; it is run once untimed so throughput is the steady state
        if (b === 0) await v.session.run(feed, [output.name]).catch(() => undefined);
        const t = performance.now();
        let out;
        try {
          out = await v.session.run(feed, [output.name]);
        } catch (e) {
          fail('unsupported', `onnxruntime failed on batch ${b + 1} (${v.label}): ${(e as Error).message.split('\n')[0]}`);
        }
        v.seconds += (performance.now() - t) / 1000;
        const o = out[output.name]!;
        if (o.type !== 'float32') fail('unsupported', `${opts.model}: output ${output.name} is ${o.type}; verify scores float32 logits`, opts.model);
        if (o.dims.length !== 2 || o.dims[0] !== rows)
          fail('unsupported', `${opts.model}: output ${output.name} is [${o.dims.join(', ')}]; verify scores N×classes logits`, opts.model);
        if (!classes) {
          classes = o.dims[1]!;
          checkLabels(labels, count, classes, opts.data);
          for (const x of built) x.score = new RunScore(count, classes);
          comparison = new LogitComparison(classes, atol, rtol);
        }
        v.logits = (o.data as Float32Array).subarray(0, n * classes);
        v.score!.add(v.logits, start, n, labels);
      }
      comparison!.add(built[0]!.logits, built[1]!.logits, n);
      progress(start + n, count, `batch ${b + 1} of ${Math.ceil(count / batch)}`);
    }

    const results: RunResult[] = built.map((v) => {
      const metrics = v.score!.finish();
      return {
        label: v.label,
        file: v.file,
        metrics,
        recorded: v.weights?.recorded ?? [],
        inferenceSeconds: v.seconds,
        imagesPerSecond: v.seconds > 0 ? count / v.seconds : 0,
      };
    });
    const cmp = comparison!.finish(built[0]!.label, built[1]!.label, results[0]!.metrics, results[1]!.metrics);
    const { verdict, reasons, provesNothing } = judge(plan.report, cmp, results, opts);
    return {
      version: 1,
      createdAt: new Date().toISOString(),
      options: opts,
      model: {
        file: opts.model,
        producer: model.producer,
        opset: model.opset,
        input: { name: input.name, shape: input.dims ?? [] },
        output: { name: output.name, shape: output.dims ?? [] },
        initializers: model.initializers.length,
        externalData: [...new Set(model.initializers.flatMap((t) => (t.external ? [t.external.location] : [])))],
      },
      data: dataReport(set, count, classes, pre),
      provider: sessions.provider,
      batchSize: batch,
      binding: plan.report,
      runs: results,
      comparison: cmp,
      verdict,
      reasons,
      provesNothing,
      seconds: (performance.now() - t0) / 1000,
      examples: pickExamples(set, results, count),
    };
  } finally {
    for (const v of built) await v.session.release().catch(() => undefined);
    for (const w of opened) w.close();
  }
}

/**
 * PASS: logits bit-identical to the reference. WARN: predictions identical, logits within
 * atol + rtol·|reference|, or some name bindings could not be confirmed. FAIL: anything else, and
 * whenever no checkpoint tensor reached the graph or a checkpoint lacks tensors the graph uses.
 * Problems come first in `reasons`, then the facts behind the verdict.
 */
export function judge(
  binding: VerifyReport['binding'],
  cmp: VerifyReport['comparison'],
  runs: RunResult[],
  opts: VerifyOptions,
  strictlyLoaded = false,
): { verdict: Verdict; reasons: string[]; provesNothing: boolean } {
  const problems: string[] = [];
  const facts: string[] = [];
  const n = runs[0]!.metrics.samples;
  // strictlyLoaded: the user's model took every checkpoint tensor (load_state_dict(strict=True))
  const provesNothing = !strictlyLoaded && !binding.initializers.some((i) => i.used);
  let verdict: Verdict;
  const vs = cmp.reference === 'graph' ? "the graph's own weights" : 'the source checkpoint';
  const maxDiff = cmp.maxAbsLogitDiff.toPrecision(3);
  if (cmp.bitIdentical) {
    verdict = 'PASS';
    facts.push(`logits are bit-identical to ${vs} on all ${n} samples`);
  } else if (cmp.identicalPredictions === 1 && cmp.outsideTolerance === 0) {
    verdict = 'WARN';
    problems.push(`predictions are identical to ${vs} on all ${n} samples, but logits differ by up to ${maxDiff} (within atol ${cmp.atol}, rtol ${cmp.rtol})`);
  } else {
    verdict = 'FAIL';
    const diff = Math.round((1 - cmp.identicalPredictions) * n);
    problems.push(
      diff
        ? `${diff} of ${n} predictions differ from ${vs}; max |Δlogit| ${maxDiff}`
        : `${cmp.outsideTolerance} logits are outside atol ${cmp.atol} + rtol ${cmp.rtol} of ${vs}; max |Δlogit| ${maxDiff}`,
    );
  }
  if (provesNothing) {
    verdict = 'FAIL';
    problems.push('no checkpoint tensor reached the graph: the runs measured only the weights exported into it, which proves nothing about the checkpoint');
  }
  for (const [label, missing] of Object.entries(binding.missingTensors)) {
    if (!missing.length) continue;
    verdict = 'FAIL';
    problems.push(
      `${label === 'against' ? opts.against : opts.checkpoint} lacks ${missing.length} tensor${missing.length > 1 ? 's' : ''} the graph uses (${missing[0]}); the graph's values stood in`,
    );
  }
  const unconfirmed = binding.initializers.filter((i) => i.kind === 'unconfirmed');
  if (unconfirmed.length) {
    const idle = unconfirmed.filter((i) => !i.used);
    const names = `${unconfirmed
      .slice(0, 3)
      .map((i) => `${i.name}${i.maxAbsDiff?.['checkpoint'] !== undefined ? ` (max |Δ| ${i.maxAbsDiff['checkpoint'].toPrecision(3)})` : ''}`)
      .join(', ')}${unconfirmed.length > 3 ? ', ...' : ''}`;
    const one = unconfirmed.length === 1;
    const some = `${unconfirmed.length} initializer${one ? '' : 's'}`;
    if (cmp.reference === 'graph' && idle.length) {
      // Without --against the graph is the reference: a checkpoint tensor that differs from it fails.
      verdict = 'FAIL';
      problems.push(
        `${some} of the graph ${one ? 'differs' : 'differ'} from the checkpoint tensor${one ? '' : 's'} of the same name and shape: ${names}; this is not the checkpoint the graph was exported from (give its source checkpoint too, and the two are compared through the graph instead)`,
      );
    } else {
      if (idle.length && verdict === 'PASS') verdict = 'WARN';
      problems.push(
        `${some} ${one ? 'matches' : 'match'} checkpoint tensors by name, but no checkpoint's values confirm the binding: ${names}; ${idle.length ? 'kept as graph constants (use them anyway with --trust-names)' : 'used anyway (--trust-names)'}`,
      );
    }
  }
  for (const [label, share] of Object.entries(binding.parameterCoverage ?? {})) {
    if (provesNothing || share >= 1) continue;
    const missed = (binding.unreached?.[label] ?? []).filter((u) => !u.key.endsWith('num_batches_tracked'));
    facts.push(
      `${(share * 100).toFixed(1)}% of ${label === 'against' ? opts.against : opts.checkpoint}'s parameters reached the graph; not ${missed
        .slice(0, 4)
        .map((u) => `${u.key} (${u.reason})`)
        .join(', ')}${missed.length > 4 ? `, and ${missed.length - 4} more` : ''}`,
    );
  }
  if (!provesNothing && binding.coverage < 1)
    facts.push(`${(binding.coverage * 100).toFixed(1)}% of the graph's weights came from the checkpoint; the rest are graph constants`);
  return { verdict, reasons: [...problems, ...facts], provesNothing };
}
