/**
 * Verification in the user's own torch: the model class from their Python, each checkpoint loaded
 * by verify-runner.py with `torch.load(weights_only=True)` and `load_state_dict(strict=True)`, the
 * same test-set readers and preprocessing as the ONNX path, the same batches in the same order
 * for both checkpoints, the same scoring and verdict. The state dict inside a container and the
 * wrapper prefixes are found on this side (as convert finds them) and sent to the runner.
 */
import type { PythonRunReport, RunResult, VerifyOptions, VerifyReport } from '../../shared/verify.ts';
import { CheckpointError, fail } from '../errors.ts';
import { openWeights } from './checkpoint-weights.ts';
import { type ChosenPython, choosePython, namedPython } from './find-python.ts';
import { LogitComparison, RunScore } from './metrics.ts';
import type { OnnxValueInfo } from '../formats/onnx/onnx-model.ts';
import { type InputPlan, preprocessInto, resolvePreprocess, sampleSize, shapeHint } from './preprocess.ts';
import { PythonRunner, RUNNER_PROTOCOL, type Loaded, type LoadRequest } from './python-runner.ts';
import { batchSizeOption, checkLabels, DEFAULT_ATOL, DEFAULT_RTOL, dataReport, exists, judge, type VerifyContext } from './run-verify.ts';
import { pickExamples } from './sample-images.ts';
import { openTestSet, type TestSet } from './test-set.ts';

/**
 * Samples go to the runner in chunks of about this many bytes (whole batches, at least one), two
 * chunks ahead of the logits read back: few wake-ups of either process, and a test set larger
 * than memory still streams.
 */
const CHUNK_BYTES = 8 << 20;

/** What verify knows of the model's input before the first sample: nothing but N×C×H×W. */
const PYTHON_INPUT: OnnxValueInfo = { name: 'x', elemType: 1, dims: ['N', '?', '?', '?'] };

/** The request that loads `file` into the class: the container path and wrapper prefixes as convert reads them. */
function loadRequest(label: string, file: string, opts: VerifyOptions): LoadRequest {
  const w = openWeights(file);
  try {
    if (w.source.kind === 'module') {
      fail(
        'unsupported',
        `${file}: a whole pickled module, which torch.load(weights_only=True) refuses; write its state dict first: ckpt convert ${file} --export-state-dict`,
        file,
      );
    }
    return {
      label,
      file,
      path: w.source.path,
      strip: w.prefixes,
      device: opts.device && opts.device !== 'auto' ? opts.device : null,
      modelClass: opts.modelClass!,
      modelArgs: opts.modelArgs ?? {},
    };
  } finally {
    w.close();
  }
}

export async function runVerifyPython(opts: VerifyOptions, ctx: VerifyContext = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const atol = opts.atol ?? DEFAULT_ATOL;
  const rtol = opts.rtol ?? DEFAULT_RTOL;
  const batchOpt = batchSizeOption(opts);
  if (opts.device && opts.device !== 'auto' && !/^(cpu|cuda(:\d+)?)$/.test(opts.device)) fail('usage', `--device takes cpu or cuda:N, not '${opts.device}'`);
  for (const [f, what] of [
    [opts.data, 'the test set'],
    [opts.checkpoint, 'the checkpoint'],
    ...(opts.against ? [[opts.against, 'the source checkpoint']] : []),
  ] as const)
    exists(f, `${what}:`);
  const progress = (done: number, total: number, label: string): void => ctx.onProgress?.({ done, total, unit: 'samples', label });

  // Python starts and imports torch (seconds) while this side reads the checkpoints' layout and the
  // test set; an error on this side is still the one reported, and stops the runner.
  // (PythonRunner.start spawns before its first await: with --python the process is under way
  // before the synchronous reading below.)
  const abandon = new AbortController();
  const launch = async (chosen: ChosenPython): Promise<{ chosen: ChosenPython; runner: PythonRunner }> => {
    progress(0, 0, `starting ${chosen.python}`);
    return { chosen, runner: await PythonRunner.start(chosen.python, (stage) => progress(0, 0, stage), undefined, abandon.signal) };
  };
  const named = namedPython(opts.python);
  if (!named) progress(0, 0, 'finding a python with torch');
  const starting = named ? launch(named) : choosePython(null).then((c) => (abandon.signal.aborted ? null : launch(c)));
  let requests: LoadRequest[];
  let set: TestSet;
  let count: number;
  let pre: InputPlan;
  try {
    requests = [loadRequest('checkpoint', opts.checkpoint, opts), ...(opts.against ? [loadRequest('against', opts.against, opts)] : [])];
    set = openTestSet(opts.data, opts.dataFormat, shapeHint(PYTHON_INPUT, opts.preprocess));
    count = Math.min(set.count, opts.limit ?? Infinity);
    if (count < 1) fail('usage', `${opts.data}: the test set is empty`, opts.data);
    pre = resolvePreprocess(PYTHON_INPUT, set.sample(0), opts.preprocess);
  } catch (e) {
    abandon.abort();
    starting.catch(() => undefined);
    throw e;
  }
  const started = await starting;
  const { chosen, runner } = started!;
  // Cancelling kills the runner at once, even inside a long load or batch.
  let cancelled = false;
  const watch = setInterval(() => {
    if (!cancelled && ctx.cancelled?.()) {
      cancelled = true;
      runner.kill();
    }
  }, 100);
  try {
    const labels = requests.map((r) => r.label);
    const batch = Math.min(batchOpt, count);
    const per = sampleSize(pre);
    const shape = pre.layout === 'NCHW' ? [pre.channels, pre.height, pre.width] : [pre.height, pre.width, pre.channels];
    const batches = Math.ceil(count / batch);
    const chunkSamples = batch * Math.max(1, Math.floor((ctx.chunkBytes ?? CHUNK_BYTES) / (batch * per * 4)));
    const chunks = Math.ceil(count / chunkSamples);
    /** reads and preprocesses chunk c (a fresh buffer each: the pipe may still hold the last) */
    const prepare = (c: number): Float32Array => {
      const start = c * chunkSamples;
      const n = Math.min(chunkSamples, count - start);
      const input = new Float32Array(n * per);
      for (let s = 0; s < n; s++) preprocessInto(set.sample(start + s), pre, input, s * per);
      return input;
    };
    const submit = (input: Float32Array): void => runner.submit(labels, [input.length / per, ...shape], batch, input);

    const tLoad = performance.now();
    const loaded: Loaded[] = [];
    let firstChunk: Float32Array | null = null;
    for (const [i, r] of requests.entries()) {
      if (ctx.cancelled?.()) throw new CheckpointError('cancelled', 'verification cancelled while loading the model');
      const loading = runner.load(r);
      loading.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
      // the first chunk is read and preprocessed while the runner loads the checkpoint, and goes
      // behind the last load request: the runner starts on it as soon as the last model is in,
      // without a round trip across the pipe (a failed load is reported first, and the runner
      // stopped, before its answer to this chunk is read)
      firstChunk ??= prepare(0);
      if (i === requests.length - 1) submit(firstChunk);
      loaded.push(await loading);
    }
    // The loop's clock starts when the runner had the last model in (its clock, as for the start-up):
    // the runner may be computing the first batch before this side reads its answer.
    const sentAt = loaded[loaded.length - 1]!.sentAt;
    const now = performance.now();
    const tLoop = typeof sentAt === 'number' ? Math.min(now, Math.max(tLoad, sentAt * 1000 - performance.timeOrigin)) : now;
    const loadSeconds = (tLoop - tLoad) / 1000;
    const scores = new Map<string, RunScore>();
    const seconds = new Map(labels.map((l) => [l, 0]));
    let classes = 0;
    let comparison: LogitComparison | null = null;
    // From tLoop to the last logits: the runner's batches, the logits' transfers, the scoring, and
    // the chunks after the first read, preprocessed and sent meanwhile.
    // Two chunks stay queued ahead of the batch being read back, so the runner never waits on this side.
    if (chunks > 1) submit(prepare(1));
    const batchesPerChunk = chunkSamples / batch;
    for (let b = 0; b < batches; b++) {
      const start = b * batch;
      const n = Math.min(batch, count - start);
      if (ctx.cancelled?.()) throw new CheckpointError('cancelled', `verification cancelled after ${start} of ${count} samples`);
      const out = await runner.results(labels, n);
      // the last batch of chunk c is back: the runner is on chunk c + 1, so chunk c + 2 goes next
      if ((b + 1) % batchesPerChunk === 0 && (b + 1) / batchesPerChunk + 1 < chunks) submit(prepare((b + 1) / batchesPerChunk + 1));
      for (const label of labels) {
        const o = out.get(label)!;
        if (!classes) {
          classes = o.shape[1]!;
          checkLabels(set.labels, count, classes, opts.data);
          for (const l of labels) scores.set(l, new RunScore(count, classes));
          comparison = new LogitComparison(classes, atol, rtol);
        }
        if (o.shape[1] !== classes || o.shape[0] !== n)
          fail('python', `${opts.modelClass} gave [${o.shape.join(', ')}] logits for ${label} on a batch of ${n}; ${classes} per sample for the first`);
        scores.get(label)!.add(o.logits, start, n, set.labels);
        seconds.set(label, seconds.get(label)! + o.seconds);
      }
      comparison!.add(out.get(labels[0]!)!.logits, out.get(labels[labels.length - 1]!)!.logits, n);
      progress(start + n, count, `batch ${b + 1} of ${batches}`);
    }
    const loopSeconds = (performance.now() - tLoop) / 1000;
    const results: RunResult[] = labels.map((label, i) => {
      const s = seconds.get(label)!;
      return {
        label,
        file: requests[i]!.file,
        metrics: scores.get(label)!.finish(),
        recorded: [],
        inferenceSeconds: s,
        imagesPerSecond: s > 0 ? count / s : 0,
      };
    });
    const reference = results[results.length - 1]!;
    const cmp = comparison!.finish(results[0]!.label, reference.label, results[0]!.metrics, reference.metrics);
    const binding: VerifyReport['binding'] = {
      initializers: [],
      counts: { bound: 0, recomputed: 0, unconfirmed: 0, constants: 0 },
      unusedTensors: Object.fromEntries(labels.map((l) => [l, []])),
      unreached: Object.fromEntries(labels.map((l) => [l, []])),
      missingTensors: Object.fromEntries(labels.map((l) => [l, []])),
      coverage: 1,
      // load_state_dict(strict=True) succeeded: every key of the checkpoint went into the model
      parameterCoverage: Object.fromEntries(labels.map((l) => [l, 1])),
      bnEps: {},
    };
    let { verdict, reasons } = judge(binding, cmp, results, opts, true);
    if (!opts.against) {
      verdict = 'WARN';
      reasons = [
        `nothing to compare with: give the source checkpoint too for a verdict; top-1 ${(results[0]!.metrics.top1 * 100).toFixed(2)}% is the checkpoint's own`,
      ];
    }
    const hello = runner.hello!;
    const python: PythonRunReport = {
      protocol: RUNNER_PROTOCOL,
      interpreter: chosen.python,
      chosenBy: chosen.how,
      pythonVersion: hello.python,
      torch: hello.torch,
      device: loaded[0]!.device,
      deviceName: loaded[0]!.deviceName,
      modelClass: opts.modelClass!,
      modelArgs: opts.modelArgs ?? {},
      applied: requests.map((r, i) => ({ label: r.label, file: r.file, path: r.path, stripped: r.strip, keys: loaded[i]!.keys })),
      startupSeconds: runner.startSeconds,
      loadSeconds,
      loopSeconds,
    };
    const cuda = /^cuda(?::(\d+))?$/.exec(python.device);
    return {
      version: 1,
      createdAt: new Date().toISOString(),
      options: opts,
      model: {
        file: opts.modelClass!,
        producer: `torch ${hello.torch} (python ${hello.python})`,
        opset: null,
        input: { name: 'x', shape: ['N', ...shape] },
        output: { name: 'logits', shape: ['N', classes] },
        initializers: 0,
        externalData: [],
      },
      data: dataReport(set, count, classes, pre),
      provider: {
        requested: opts.device ?? 'auto',
        used: cuda ? 'cuda' : 'cpu',
        deviceId: cuda ? Number(cuda[1] ?? 0) : null,
        fallback: null,
        onnxruntime: '',
      },
      batchSize: batch,
      binding,
      runs: results,
      comparison: cmp,
      verdict,
      reasons,
      provesNothing: false,
      seconds: (performance.now() - t0) / 1000,
      examples: pickExamples(set, results, count),
      python,
    };
  } catch (e) {
    if (cancelled || ctx.cancelled?.()) throw new CheckpointError('cancelled', 'verification cancelled; the Python runner was stopped');
    throw e;
  } finally {
    clearInterval(watch);
    await runner.close();
  }
}
