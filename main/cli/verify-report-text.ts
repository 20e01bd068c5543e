/** The verify report as terminal text. */
import * as path from 'node:path';
import type { RunResult, VerifyReport } from '../../shared/verify.ts';
import { plural, type Style } from './format-text.ts';
import { num, pct } from '../verify/report-numbers.ts';

function runLine(r: RunResult, width: number): string {
  const m = r.metrics;
  const rec = r.recorded
    .filter((x) => x.fraction !== null)
    .map((x) => `recorded ${x.path} ${pct(x.fraction)}`)
    .join(', ');
  const name = r.file ? path.basename(r.file) : "(the graph's own weights)";
  return `${r.label.padEnd(10)} ${name.padEnd(width)}  top-1 ${pct(m.top1)} (${m.correct}/${m.samples})  top-5 ${pct(m.top5)}  ${Math.round(r.imagesPerSecond).toLocaleString('en-US')} img/s${rec ? `  ${rec}` : ''}`;
}

export function renderReportText(r: VerifyReport, s: Style): string {
  const out: string[] = [];
  const colour = r.verdict === 'PASS' ? s.green : r.verdict === 'WARN' ? s.yellow : s.red;
  out.push(`${s.bold('verify')}   ${colour(s.bold(r.verdict))}${r.provesNothing ? s.red('  (proves nothing)') : ''}`);
  for (const why of r.reasons) out.push(`         - ${why}`);
  if (!r.python)
    out.push(
      `${s.bold('graph')}    ${r.model.file} (${r.model.producer || 'unknown producer'}, opset ${r.model.opset ?? '?'})  ${r.model.input.name} [${r.model.input.shape.join(', ')}] → ${r.model.output.name} [${r.model.output.shape.join(', ')}]${r.model.externalData.length ? `  external data ${r.model.externalData.join(', ')}` : ''}`,
    );
  const p = r.data.preprocess;
  out.push(
    `${s.bold('data')}     ${r.data.path} (${r.data.format}, ${r.data.samples} samples, ${r.data.classes} classes)  ${p.layout} ${p.channels}×${p.height}×${p.width}, resize ${p.resize}, scale ${p.scale ?? 'auto'}, mean ${p.mean.join(',')}, std ${p.std.join(',')}`,
  );
  if (!r.python)
    out.push(
      `${s.bold('device')}   ${r.provider.used}${r.provider.deviceId !== null ? `:${r.provider.deviceId}` : ''} (asked ${r.provider.requested}; onnxruntime ${r.provider.onnxruntime}; batches of ${r.batchSize})${r.provider.fallback ? `\n         ${s.dim(`CUDA not used: ${r.provider.fallback}`)}` : ''}`,
    );
  if (r.python) {
    const py = r.python;
    out.push(
      `${s.bold('python')}   ${py.interpreter} (${py.chosenBy}; python ${py.pythonVersion}, torch ${py.torch}) on ${py.device} (${py.deviceName}); start-up ${py.startupSeconds.toFixed(2)} s, loading ${py.loadSeconds.toFixed(2)} s`,
    );
    out.push(`${s.bold('model')}    ${py.modelClass}(**${JSON.stringify(py.modelArgs)}); torch.load(weights_only=True), load_state_dict(strict=True)`);
    for (const a of py.applied)
      out.push(
        `         ${a.label}: ${plural(a.keys, 'key')}${a.path.length ? ` from ${a.path.map((k) => `[${JSON.stringify(k)}]`).join('')}` : ''}${a.stripped.length ? `, prefixes removed: ${a.stripped.map((p) => `'${p}'`).join(', ')}` : ', no prefixes removed'}`,
      );
  }
  const c = r.binding.counts;
  const params = r.binding.parameterCoverage?.['checkpoint'];
  if (!r.python)
    out.push(
      `${s.bold('binding')}  ${c.bound} bound, ${c.recomputed} recomputed (BatchNorm folds), ${c.unconfirmed} unconfirmed, ${c.constants} graph constants; ${pct(r.binding.coverage)} of the graph's weights from the checkpoint${params !== undefined ? `, ${pct(params)} of the checkpoint's parameters reached the graph` : ''}`,
    );
  for (const i of r.binding.initializers.filter((x) => x.kind === 'unconfirmed')) out.push(`         ${s.yellow('unconfirmed')} ${i.name}: ${i.note ?? ''}`);
  for (const [label, list] of Object.entries(r.binding.unreached ?? {})) {
    const real = list.filter((u) => !u.key.endsWith('num_batches_tracked'));
    for (const u of real.slice(0, 8)) out.push(`         ${label}: ${u.key} did not reach the graph: ${u.reason}`);
    if (real.length > 8) out.push(`         ${label}: ... and ${real.length - 8} more`);
  }
  if (!r.binding.unreached)
    for (const [label, keys] of Object.entries(r.binding.unusedTensors))
      if (keys.length)
        out.push(`         ${label}: ${plural(keys.length, 'tensor')} the graph never used: ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', ...' : ''}`);
  for (const [label, miss] of Object.entries(r.binding.missingTensors))
    for (const m of miss.slice(0, 5)) out.push(`         ${s.red('missing')} in ${label}: ${m}`);
  const width = Math.max(...r.runs.map((x) => (x.file ? path.basename(x.file) : "(the graph's own weights)").length));
  out.push(`${s.bold('runs')}     ${runLine(r.runs[0]!, width)}`);
  for (const x of r.runs.slice(1)) out.push(`         ${runLine(x, width)}`);
  const k = r.comparison;
  const delta = k.accuracyDelta * 100;
  if (r.runs.length > 1)
    out.push(
      `${s.bold('compare')}  ${k.candidate} vs ${k.reference}: accuracy Δ ${delta >= 0 ? '+' : ''}${delta.toFixed(2)} pp; identical predictions ${pct(k.identicalPredictions)}; max |Δlogit| ${num(k.maxAbsLogitDiff)}; max relative ${num(k.maxRelDiff)}; bit-identical ${k.bitIdentical ? 'yes' : 'no'}`,
    );
  if (k.differingSamples.length)
    out.push(`         predictions differ at samples ${k.differingSamples.slice(0, 12).join(', ')}${k.differingSamples.length > 12 ? ', ...' : ''}`);
  return out.join('\n') + '\n';
}
