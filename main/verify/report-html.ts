/**
 * The verify report as one self-contained HTML page: inline CSS and SVG charts (per-class accuracy,
 * confusion matrices, the |Δlogit| histogram), the binding table, and the report itself as JSON
 * in a `<script type="application/json">` block. No scripts run and nothing is fetched.
 */
import * as path from 'node:path';
import type { RunResult, VerifyReport } from '../../shared/verify.ts';
import { num, pct } from './report-numbers.ts';

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const COLOURS = ['#2563eb', '#f97316', '#16a34a'];

function perClassChart(r: VerifyReport): string {
  const k = r.data.classes;
  if (!k || k > 200) return '';
  const w = Math.max(320, Math.min(1100, k * 12 * r.runs.length + 60));
  const h = 180;
  const left = 40;
  const bottom = 24;
  const slot = (w - left - 10) / k;
  const bar = Math.max(1, (slot * 0.8) / r.runs.length);
  const parts: string[] = [];
  for (const t of [0, 0.5, 1]) {
    const y = 10 + (1 - t) * (h - 10 - bottom);
    parts.push(`<line x1="${left}" x2="${w - 5}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${left - 4}" y="${y + 4}" text-anchor="end">${t * 100}%</text>`);
  }
  r.runs.forEach((run, ri) => {
    run.metrics.perClass.forEach((c, ci) => {
      if (c.accuracy === null) return;
      const bh = c.accuracy * (h - 10 - bottom);
      const x = left + ci * slot + slot * 0.1 + ri * bar;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(h - bottom - bh).toFixed(1)}" width="${bar.toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLOURS[ri % 3]}"><title>${esc(run.label)}, class ${esc(r.data.classNames?.[ci] ?? ci)}: ${pct(c.accuracy)} (${c.correct}/${c.samples})</title></rect>`,
      );
    });
  });
  if (k <= 40)
    for (let ci = 0; ci < k; ci++)
      parts.push(
        `<text x="${(left + ci * slot + slot / 2).toFixed(1)}" y="${h - 8}" text-anchor="middle">${esc((r.data.classNames?.[ci] ?? String(ci)).slice(0, 6))}</text>`,
      );
  return `<h2>Per-class accuracy</h2><p class="legend">${r.runs.map((x, i) => `<span style="color:${COLOURS[i % 3]}">■</span> ${esc(x.label)}`).join(' ')}</p><svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="per-class accuracy">${parts.join('')}</svg>`;
}

function confusionChart(run: RunResult, names: string[] | null): string {
  const m = run.metrics.confusion;
  const k = m.length;
  if (!k || k > 100) return `<p>${k} classes: the confusion matrix is in the JSON below.</p>`;
  const cell = Math.max(4, Math.min(28, Math.floor(360 / k)));
  const off = k <= 20 ? 40 : 10;
  const size = off + k * cell + 2;
  const rows = m.map((row) => row.reduce((a, b) => a + b, 0));
  const parts: string[] = [];
  m.forEach((row, t) =>
    row.forEach((n, p) => {
      if (!n) return;
      const share = rows[t] ? n / rows[t]! : 0;
      const fill = t === p ? `rgba(22,163,74,${(0.15 + 0.85 * share).toFixed(3)})` : `rgba(220,38,38,${(0.2 + 0.8 * share).toFixed(3)})`;
      parts.push(
        `<rect x="${off + p * cell}" y="${off + t * cell}" width="${cell}" height="${cell}" fill="${fill}"><title>true ${esc(names?.[t] ?? t)}, predicted ${esc(names?.[p] ?? p)}: ${n}</title></rect>`,
      );
      if (cell >= 18) parts.push(`<text x="${off + p * cell + cell / 2}" y="${off + t * cell + cell / 2 + 4}" text-anchor="middle">${n}</text>`);
    }),
  );
  if (k <= 20)
    for (let i = 0; i < k; i++) {
      const label = esc((names?.[i] ?? String(i)).slice(0, 5));
      parts.push(
        `<text x="${off + i * cell + cell / 2}" y="${off - 6}" text-anchor="middle">${label}</text><text x="${off - 4}" y="${off + i * cell + cell / 2 + 4}" text-anchor="end">${label}</text>`,
      );
    }
  parts.push(`<rect x="${off}" y="${off}" width="${k * cell}" height="${k * cell}" fill="none" stroke="#999"/>`);
  return `<figure><svg viewBox="0 0 ${size} ${size}" width="${size}" height="${size}" role="img" aria-label="confusion matrix">${parts.join('')}</svg><figcaption>${esc(run.label)}: rows true class, columns predicted</figcaption></figure>`;
}

function diffChart(r: VerifyReport): string {
  const hist = r.comparison.diffHistogram;
  const bins = [{ label: '0', count: hist.zero }, ...hist.decades.map((d) => ({ label: `≥${d.from.toExponential(0)}`, count: d.count }))];
  const max = Math.max(1, ...bins.map((b) => b.count));
  const w = 40 + bins.length * 44;
  const h = 170;
  const parts = bins.map((b, i) => {
    const bh = (b.count / max) * 110;
    const x = 40 + i * 44;
    return `<rect x="${x}" y="${130 - bh}" width="36" height="${bh}" fill="${i === 0 ? '#16a34a' : '#dc2626'}"><title>${b.count} samples</title></rect><text x="${x + 18}" y="${145}" text-anchor="middle">${b.label}</text>${b.count ? `<text x="${x + 18}" y="${126 - bh}" text-anchor="middle">${b.count}</text>` : ''}`;
  });
  return `<h2>Largest |Δlogit| per sample (${esc(r.comparison.candidate)} vs ${esc(r.comparison.reference)})</h2><svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="logit difference histogram">${parts.join('')}</svg>`;
}

function table(head: string[], rows: (string | number)[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${typeof c === 'number' ? c : c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function renderReportHtml(r: VerifyReport): string {
  const tone = r.verdict === 'PASS' ? 'pass' : r.verdict === 'WARN' ? 'warn' : 'fail';
  const k = r.comparison;
  const runs = table(
    ['run', 'file', 'top-1', 'top-5', 'correct', 'recorded in the checkpoint', 'images/s', 'logits sha256'],
    r.runs.map((x) => [
      esc(x.label),
      esc(x.file ? path.basename(x.file) : "the graph's own weights"),
      pct(x.metrics.top1),
      pct(x.metrics.top5),
      `${x.metrics.correct}/${x.metrics.samples}`,
      esc(x.recorded.map((m) => `${m.path} = ${m.fraction !== null ? pct(m.fraction) : m.value}`).join(', ') || '–'),
      Math.round(x.imagesPerSecond).toLocaleString('en-US'),
      `<code>${x.metrics.logitsSha256.slice(0, 16)}…</code>`,
    ]),
  );
  const binding = table(
    ['initializer', 'shape', 'kind', 'from', 'confirmed by', 'max |Δ| vs graph'],
    r.binding.initializers.map((i) => [
      `<code>${esc(i.name)}</code>`,
      esc(`[${i.shape.join(', ')}] ${i.dtype}`),
      `<span class="k-${i.kind}">${esc(i.kind)}${i.used ? '' : ' (not used)'}</span>${i.note ? `<br><small>${esc(i.note)}</small>` : ''}`,
      esc((i.from ?? []).join(', ') || '–') + (i.via ? `<br><small>${esc(i.via)}</small>` : ''),
      esc((i.confirmedBy ?? []).join(', ') || '–'),
      esc(
        Object.entries(i.maxAbsDiff ?? {})
          .map(([l, d]) => `${l}: ${num(d)}`)
          .join(', ') || '–',
      ),
    ]),
  );
  const unused = Object.entries(r.binding.unusedTensors)
    .filter(([, v]) => v.length)
    .map(
      ([l, v]) =>
        `<p><b>${esc(l)}</b>: ${v.length} tensor${v.length > 1 ? 's' : ''} the graph never used: ${esc(v.slice(0, 40).join(', '))}${v.length > 40 ? ', …' : ''}</p>`,
    )
    .join('');
  const p = r.data.preprocess;
  const json = JSON.stringify(r).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ckpt verify: ${esc(r.verdict)} · ${esc(path.basename(r.options.checkpoint))}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1150px;padding:0 16px;color:#1f2937}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.verdict{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:700}
.pass{background:#16a34a}.warn{background:#d97706}.fail{background:#dc2626}
ul.reasons{margin:8px 0 0 0}table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f9fafb}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{font-weight:600}dd{margin:0}
svg text{font-size:10px;fill:#374151}figure{display:inline-block;margin:0 18px 0 0}figcaption{font-size:12px;color:#6b7280}
.k-bound,.k-recomputed{color:#15803d}.k-unconfirmed{color:#b45309}.k-constant{color:#6b7280}.legend{margin:0}
</style></head><body>
<h1>Verification <span class="verdict ${tone}">${esc(r.verdict)}</span>${r.provesNothing ? ' <span class="verdict fail">proves nothing</span>' : ''}</h1>
<ul class="reasons">${r.reasons.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>
<h2>Setup</h2><dl>
<dt>checkpoint</dt><dd>${esc(r.options.checkpoint)}</dd>
${r.options.against ? `<dt>against</dt><dd>${esc(r.options.against)}</dd>` : ''}
<dt>graph</dt><dd>${esc(r.model.file)} (${esc(r.model.producer || 'unknown producer')}, opset ${esc(r.model.opset ?? '?')}); ${esc(r.model.input.name)} [${esc(r.model.input.shape.join(', '))}] → ${esc(r.model.output.name)} [${esc(r.model.output.shape.join(', '))}]${r.model.externalData.length ? `; external data ${esc(r.model.externalData.join(', '))}` : ''}</dd>
<dt>test set</dt><dd>${esc(r.data.path)} (${esc(r.data.format)}, ${r.data.samples} samples, ${r.data.classes} classes)</dd>
<dt>preprocessing</dt><dd>${esc(`${p.layout} ${p.channels}×${p.height}×${p.width}, resize ${p.resize}, scale ${p.scale ?? 'auto'}, mean ${p.mean.join(', ')}, std ${p.std.join(', ')}`)}</dd>
<dt>device</dt><dd>${esc(r.provider.used)}${r.provider.deviceId !== null ? `:${r.provider.deviceId}` : ''} (asked ${esc(r.provider.requested)}, onnxruntime ${esc(r.provider.onnxruntime)}, batches of ${r.batchSize})${r.provider.fallback ? `<br><small>CUDA not used: ${esc(r.provider.fallback)}</small>` : ''}</dd>
<dt>time</dt><dd>${r.seconds.toFixed(2)} s, ${esc(r.createdAt)}</dd>
</dl>
<h2>Results</h2>${runs}
<h2>Comparison: ${esc(k.candidate)} vs ${esc(k.reference)}</h2>
${table(['accuracy Δ', 'identical predictions', 'bit-identical logits', 'max |Δlogit|', 'max relative Δ', `outside atol ${k.atol} + rtol ${k.rtol}`], [[`${(k.accuracyDelta * 100).toFixed(2)} pp`, pct(k.identicalPredictions), k.bitIdentical ? 'yes' : 'no', num(k.maxAbsLogitDiff), num(k.maxRelDiff), k.outsideTolerance]])}
${k.differingSamples.length ? `<p>Predictions differ at samples ${esc(k.differingSamples.join(', '))}${k.differingSamples.length >= 100 ? ', …' : ''}</p>` : ''}
${diffChart(r)}
${perClassChart(r)}
<h2>Confusion matrices</h2>${r.runs.map((x) => confusionChart(x, r.data.classNames)).join('')}
${
  r.python
    ? `<h2>The model in the user's torch</h2>
<p>${esc(r.python.modelClass)} in ${esc(r.python.interpreter)} (${esc(r.python.chosenBy)}; python ${esc(r.python.pythonVersion)}, torch ${esc(r.python.torch)}) on ${esc(r.python.device)} (${esc(r.python.deviceName)}): torch.load(weights_only=True), load_state_dict(strict=True); ${r.python.applied.map((a) => `${esc(a.label)} ${a.keys} keys${a.stripped.length ? `, ${esc(a.stripped.join(' '))} removed` : ''}`).join('; ')}.</p>`
    : `<h2>Binding of the graph's weights</h2>
<p>${r.binding.counts.bound} bound, ${r.binding.counts.recomputed} recomputed, ${r.binding.counts.unconfirmed} unconfirmed, ${r.binding.counts.constants} graph constants; ${pct(r.binding.coverage)} of the graph's weights came from the checkpoint.</p>
${binding}${unused}`
}
<h2>Report data</h2><p>The full report as JSON, as <code>ckpt verify --json</code> prints it:</p>
<script type="application/json" id="report">${json}</script>
</body></html>
`;
}
