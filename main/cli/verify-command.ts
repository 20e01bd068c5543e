import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import {
  type Preprocess,
  RESIZE_MODES,
  type ResizeMode,
  TEST_SET_FORMATS,
  type TestSetFormat,
  type VerifyOptions,
  type VerifyReport,
} from '../../shared/verify.ts';
import { asCheckpointError, CheckpointError, fail } from '../errors.ts';
import { WorkerPool } from '../jobs/pool.ts';
import { renderReportHtml } from '../verify/report-html.ts';
import { renderReportText } from './verify-report-text.ts';
import { makeStyle } from './format-text.ts';
import { cancelOnSignal } from './cancel-on-signal.ts';
import type { CliIO } from './io.ts';

export const VERIFY_HELP = `ckpt verify --model graph.onnx --data <test set> <checkpoint> [--against <other>] [options]
ckpt verify --model-class SPEC [--python PY] [--model-args JSON] --data <test set> <checkpoint> [--against <other>]

Runs the model's ONNX graph with the checkpoint's weights on a test set and scores it. With
--against, both checkpoints run through the same graph and batches and are compared; without it,
the graph's own exported weights are the reference. Every binding of a graph weight to a checkpoint
tensor is found by following the graph and confirmed by value (BatchNorm folded into a Conv or
Linear is recomputed; transposed, reshaped, cast and scaled copies are recognised).

With --model-class, the user's own torch runs the model instead: SPEC is path/to/file.py:ClassName
or package.module:ClassName (or file.py alone when it defines one nn.Module class), constructed with --model-args (JSON keyword arguments); each checkpoint
is loaded with torch.load(weights_only=True) and load_state_dict(strict=True), wrapper prefixes and
containers removed as convert does, and run with model.eval() under torch.no_grad().

test sets
  x.npz                  arrays x (images) and y (labels)
  folder or *-idx3-ubyte MNIST / Fashion-MNIST idx files (.gz too; the t10k split of a folder)
  cifar-10-batches-py/   CIFAR-10 or CIFAR-100 python batches (test_batch / test)
  folder/<class>/*.png   an ImageFolder tree of PNG or JPEG images

options
  --against P            the checkpoint to compare with (usually the source of a conversion)
  --device D             auto (default: CUDA 0 when available), cpu, cuda[:N]
  --python PY            the interpreter for --model-class (default: the first python on PATH with torch)
  --model-args JSON      keyword arguments for the --model-class constructor, e.g. '{"width": 64}'
  --batch-size N         samples per inference call (default 64)
  --limit N              only the first N samples
  --data-format F        npz, idx, cifar or imagefolder (default: detected)
  --layout L             nchw or nhwc (default: from the graph's input)
  --size H,W             image size fed to the graph (default: from the graph's input)
  --channels C           channels fed to the graph (default: from the graph's input)
  --resize M             bilinear (default, like torchvision), area or nearest
  --scale X              multiply raw values by X (default: 1/255 for 8-bit images, 1 for float)
  --mean a[,b,c]         per-channel mean subtracted after scaling (default 0)
  --std a[,b,c]          per-channel std divided by (default 1)
  --atol X, --rtol X     logits are close when |a-b| <= atol + rtol*|b| (defaults 1e-4, 1e-4)
  --trust-names          also use name bindings whose values no checkpoint confirms
  --bn-eps X             BatchNorm epsilon for recomputing folded weights (default 1e-5)
  --report F             write the report: F.html (a self-contained page) or F.json (repeatable)
  --json                 print the report as JSON

exit codes: 0 PASS (logits bit-identical), 1 WARN or FAIL, 2 usage or input error, 130 cancelled`;

const FORMATS: readonly string[] = TEST_SET_FORMATS;
const RESIZES: readonly string[] = RESIZE_MODES;

export function parseVerifyArgs(args: string[]): { options: VerifyOptions; json: boolean; reports: string[] } | 'help' {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      data: { type: 'string' },
      against: { type: 'string' },
      device: { type: 'string' },
      'batch-size': { type: 'string' },
      limit: { type: 'string' },
      'data-format': { type: 'string' },
      layout: { type: 'string' },
      size: { type: 'string' },
      channels: { type: 'string' },
      resize: { type: 'string' },
      scale: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
      atol: { type: 'string' },
      rtol: { type: 'string' },
      'trust-names': { type: 'boolean' },
      'bn-eps': { type: 'string' },
      report: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      python: { type: 'string' },
      'model-class': { type: 'string' },
      'model-args': { type: 'string' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length !== 1)
    fail('usage', 'verify takes one checkpoint: ckpt verify --model graph.onnx --data <test set> <checkpoint> (or --model-class file.py:Class)');
  const modelClass = values['model-class'];
  if (!values.model && !modelClass)
    fail('usage', 'say which model to run: --model graph.onnx (export one with torch.onnx.export), or --model-class file.py:ClassName with your own python');
  if (values.model && modelClass) fail('usage', '--model and --model-class are two ways to give the architecture; pass one');
  if (!modelClass && (values.python || values['model-args'])) fail('usage', '--python and --model-args go with --model-class');
  let modelArgs: Record<string, unknown> | null = null;
  if (values['model-args'] !== undefined) {
    try {
      modelArgs = JSON.parse(values['model-args']) as Record<string, unknown>;
    } catch {
      modelArgs = null;
    }
    if (!modelArgs || typeof modelArgs !== 'object' || Array.isArray(modelArgs))
      fail('usage', `--model-args takes a JSON object of keyword arguments, e.g. '{"width": 64}', not '${values['model-args']}'`);
  }
  if (!values.data) fail('usage', 'say which test set to run: --data <x.npz | idx folder | CIFAR batch | ImageFolder>');
  const number = (flag: string, v: string | undefined, check: (n: number) => boolean, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !check(n)) fail('usage', `--${flag} takes ${what}, not '${v}'`);
    return n;
  };
  const list = (flag: string, v: string | undefined): number[] | undefined => {
    if (v === undefined) return undefined;
    const xs = v.split(',').map((s) => Number(s.trim()));
    if (!xs.length || xs.some((x) => !Number.isFinite(x))) fail('usage', `--${flag} takes numbers separated by commas, e.g. 0.485,0.456,0.406`);
    return xs;
  };
  const whole = (n: number): boolean => Number.isInteger(n) && n >= 1;
  const pre: Partial<Preprocess> = {};
  if (values.layout !== undefined) {
    const l = values.layout.toUpperCase();
    if (l !== 'NCHW' && l !== 'NHWC') fail('usage', `--layout takes nchw or nhwc, not '${values.layout}'`);
    pre.layout = l;
  }
  if (values.size !== undefined) {
    const m = /^(\d+)\s*[,x×]\s*(\d+)$/i.exec(values.size.trim()) ?? /^(\d+)$/.exec(values.size.trim());
    if (!m || Number(m[1]) < 1) fail('usage', `--size takes H,W (or one number for square images), not '${values.size}'`);
    pre.height = Number(m![1]);
    pre.width = Number(m![2] ?? m![1]);
  }
  const channels = number('channels', values.channels, whole, 'a whole number');
  if (channels !== undefined) pre.channels = channels;
  if (values.resize !== undefined) {
    if (!RESIZES.includes(values.resize)) fail('usage', `--resize takes ${RESIZES.join(', ')}, not '${values.resize}'`);
    pre.resize = values.resize as ResizeMode;
  }
  const scale = number('scale', values.scale, (n) => n !== 0, 'a non-zero number');
  if (scale !== undefined) pre.scale = scale;
  const mean = list('mean', values.mean);
  const std = list('std', values.std);
  if (mean) pre.mean = mean;
  if (std) pre.std = std;
  if (values['data-format'] !== undefined && !FORMATS.includes(values['data-format']))
    fail('usage', `--data-format takes ${FORMATS.join(', ')}, not '${values['data-format']}'`);
  const reports = values.report ?? [];
  for (const r of reports) if (!/\.(html?|json)$/i.test(r)) fail('usage', `--report writes .html or .json files, not '${r}'`);
  const options: VerifyOptions = {
    model: values.model ?? '',
    ...(modelClass ? { modelClass, modelArgs: modelArgs ?? {}, python: values.python ?? null } : {}),
    data: values.data!,
    checkpoint: positionals[0]!,
    against: values.against ?? null,
    device: values.device ?? 'auto',
    ...(values['batch-size'] !== undefined ? { batchSize: number('batch-size', values['batch-size'], whole, 'a whole number')! } : {}),
    ...(values.limit !== undefined ? { limit: number('limit', values.limit, whole, 'a whole number')! } : {}),
    ...(values['data-format'] !== undefined ? { dataFormat: values['data-format'] as TestSetFormat } : {}),
    ...(Object.keys(pre).length ? { preprocess: pre } : {}),
    ...(values.atol !== undefined ? { atol: number('atol', values.atol, (n) => n >= 0, 'a number >= 0')! } : {}),
    ...(values.rtol !== undefined ? { rtol: number('rtol', values.rtol, (n) => n >= 0, 'a number >= 0')! } : {}),
    ...(values['trust-names'] ? { trustNames: true } : {}),
    ...(values['bn-eps'] !== undefined ? { bnEps: number('bn-eps', values['bn-eps'], (n) => n > 0, 'a positive number')! } : {}),
  };
  return { options, json: !!values.json, reports };
}

export async function runVerifyCommand(args: string[], io: CliIO): Promise<number> {
  const p = parseVerifyArgs(args);
  if (p === 'help') {
    io.stdout(VERIFY_HELP + '\n');
    return 0;
  }
  const controller = new AbortController();
  const release = cancelOnSignal(controller);
  const pool = new WorkerPool(1);
  let shown = false;
  try {
    const report: VerifyReport = await pool.run(
      { kind: 'verify', options: p.options },
      {
        signal: controller.signal,
        onProgress: (pr) => {
          if (!io.isTTY || p.json || !pr.total) return;
          io.stdout(`\r\x1b[2Kverifying: ${pr.done}/${pr.total} samples  ${pr.label ?? ''}`);
          shown = true;
        },
      },
    );
    if (shown) io.stdout('\r\x1b[2K');
    for (const r of p.reports) {
      try {
        fs.writeFileSync(r, /\.json$/i.test(r) ? JSON.stringify(report, null, 1) + '\n' : renderReportHtml(report));
      } catch (e) {
        throw asCheckpointError(e, r);
      }
    }
    io.stdout(
      p.json ? JSON.stringify(report) + '\n' : renderReportText(report, makeStyle(io.color)) + p.reports.map((r) => `report written to ${r}\n`).join(''),
    );
    return report.verdict === 'PASS' ? 0 : 1;
  } catch (e) {
    if (shown) io.stdout('\r\x1b[2K');
    if (e instanceof CheckpointError && e.kind === 'cancelled') {
      io.stderr(`ckpt: cancelled: ${e.message}\n`);
      return 130;
    }
    throw e;
  } finally {
    release();
    await pool.close();
  }
}
