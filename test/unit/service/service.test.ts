// The API service on the real sample workspace: workspace and recent files, the file browser,
// inspect and tensor stats in worker threads, conversions, batches, verifications and re-shards
// as jobs with events, where a job stands (jobStatus), cancelling, and typed usage errors for bad
// arguments.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiError, type ApiEvent } from '../../../shared/api.ts';
import type { ReshardRequest } from '../../../shared/reshard.ts';
import type { VerifyOptions, VerifyReport } from '../../../shared/verify.ts';
import { createApiService } from '../../../main/service/service.ts';
import { bigSafetensors, CPU_RULES, DP, EventLog, SAMPLE, tempDir, throughTransport } from './helpers.ts';

const configDir = tempDir('config');
const service = throughTransport(createApiService({ shell: 'web', configDir }));
const log = new EventLog();
const unsubscribe = service.onEvent(log.push);
after(async () => {
  unsubscribe();
  await service.close();
});

/** The ApiError a call rejects with. */
async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected an ApiError, got ${e}`);
    assert.doesNotMatch(e.info.message, /\n|    at /, 'one line, no stack');
    return e;
  }
  assert.fail('expected the call to fail');
}

describe('workspace', () => {
  test('names the bundled sample workspace and the DP checkpoint to open first', async () => {
    const w = await service.getWorkspace();
    assert.equal(w.sampleDir, SAMPLE);
    assert.equal(w.sampleFile, DP);
    assert.ok(fs.existsSync(w.sampleFile));
    assert.equal(w.shell, 'web');
    assert.equal(w.nativeDialogs, false);
    assert.match(w.version, /^\d+\.\d+\.\d+/);
    assert.equal(await service.chooseFile('file'), null, 'no native dialogs in web mode');
  });

  test('recent files are kept in the config folder, newest first, across restarts', async () => {
    const cpu = path.join(SAMPLE, 'digits-cnn', 'cpu.pt');
    await service.addRecent(cpu);
    await service.addRecent(DP);
    await service.addRecent(cpu);
    assert.deepEqual((await service.getWorkspace()).recent, [cpu, DP]);
    const saved = JSON.parse(fs.readFileSync(path.join(configDir, 'recent.json'), 'utf8'));
    assert.deepEqual(saved.recent, [cpu, DP]);
    const again = createApiService({ shell: 'electron', configDir, chooseFile: async () => '/picked' });
    try {
      const w = await again.getWorkspace();
      assert.deepEqual(w.recent, [cpu, DP]);
      assert.equal(w.nativeDialogs, true);
      assert.equal(await again.chooseFile('folder'), '/picked');
    } finally {
      await again.close();
    }
  });

  test('a recent file that was deleted is left out', async () => {
    const dir = tempDir('recent');
    const gone = path.join(dir, 'gone.pt');
    fs.copyFileSync(DP, gone);
    await service.addRecent(gone);
    assert.equal((await service.getWorkspace()).recent[0], gone);
    fs.rmSync(gone);
    assert.ok(!(await service.getWorkspace()).recent.includes(gone));
  });

  test('addRecent takes an absolute path', async () => {
    const e = await apiError(service.addRecent('dp.pt'));
    assert.equal(e.info.kind, 'usage');
    assert.match(e.info.message, /file must be an absolute path/);
  });
});

describe('listDirectory', () => {
  test('folders first, then files by name, checkpoints recognised by content', async () => {
    const l = await service.listDirectory(path.join(SAMPLE, 'digits-cnn'));
    assert.equal(l.parent, SAMPLE);
    const files = [
      'accuracy.json',
      'checkpoint.pth.tar',
      'cpu.pt',
      'cuda1.pt',
      'digits_model.py',
      'digits-test.npz',
      'dp.pt',
      'legacy_cpu.pt',
      'model.onnx',
      'README.md',
      'whole_model_dp.pt',
    ];
    assert.deepEqual(
      l.entries.map((e) => e.name),
      ['ddp', ...files.sort((a, b) => a.localeCompare(b))],
    );
    const by = new Map(l.entries.map((e) => [e.name, e]));
    assert.equal(by.get('ddp')!.kind, 'dir');
    for (const f of ['dp.pt', 'cpu.pt', 'cuda1.pt', 'checkpoint.pth.tar', 'legacy_cpu.pt', 'whole_model_dp.pt']) assert.equal(by.get(f)!.checkpoint, true, f);
    for (const f of ['README.md', 'accuracy.json', 'digits_model.py', 'model.onnx', 'digits-test.npz']) assert.equal(by.get(f)!.checkpoint, false, f);
    assert.equal(by.get('dp.pt')!.bytes, fs.statSync(DP).size);
    assert.equal(by.get('dp.pt')!.path, DP);
  });

  test('the root has no parent', async () => {
    assert.equal((await service.listDirectory('/')).parent, null);
  });

  test('a missing folder, a file and a relative path are typed errors', async () => {
    assert.equal((await apiError(service.listDirectory(path.join(SAMPLE, 'nope')))).info.kind, 'io');
    const file = await apiError(service.listDirectory(DP));
    assert.equal(file.info.kind, 'usage');
    assert.match(file.info.message, /is a file, not a folder/);
    assert.equal((await apiError(service.listDirectory('digits-cnn'))).info.kind, 'usage');
  });
});

describe('inspect and tensor stats (worker threads)', () => {
  test('the sample DP checkpoint is DataParallel on cuda:0', async () => {
    const r = await service.inspect(DP);
    assert.equal(r.format, 'torch-zip');
    assert.equal(r.layout.kind, 'dp');
    assert.deepEqual(r.layout.prefixes, ['module.']);
    assert.deepEqual(r.layout.devices, { 'cuda:0': 16 });
    assert.equal(r.security.verdict, 'safe');
  });

  test('tensor stats of the first convolution', async () => {
    const s = await service.tensorStats(DP, ['module.conv1.weight'], 16);
    assert.equal(s.dtype, 'float32');
    assert.equal(s.numel, 8 * 1 * 3 * 3);
    assert.equal(s.histogram!.counts.length, 16);
    assert.equal(
      s.histogram!.counts.reduce((a, b) => a + b, 0),
      s.numel - s.nan - s.inf,
    );
    assert.ok(s.min! <= s.mean! && s.mean! <= s.max!);
  });

  test('a file that is not a checkpoint is a typed error from the worker', async () => {
    const e = await apiError(service.inspect(path.join(SAMPLE, 'digits-cnn', 'README.md')));
    assert.equal(e.info.kind, 'not-a-checkpoint');
    const t = await apiError(service.tensorStats(DP, ['no.such.tensor'], 8));
    assert.equal(t.info.kind, 'usage');
  });
});

describe('conversion jobs', () => {
  test('previewConversion shows the plan without writing', async () => {
    const out = path.join(tempDir('preview'), 'cpu.pt');
    const plan = await service.previewConversion(DP, CPU_RULES, out);
    assert.equal(plan.layoutBefore.kind, 'dp');
    assert.equal(plan.layoutAfter, 'cpu');
    assert.equal(plan.outputs[0]!.file, out);
    assert.deepEqual(plan.stateDicts[0]!.stripped, ['module.']);
    assert.ok(!fs.existsSync(out));
  });

  test('previewConversion keeps the file open between rule changes, and sees the file change', async () => {
    const file = path.join(tempDir('preview-cache'), 'model.pt');
    fs.copyFileSync(DP, file);
    const asDp = await service.previewConversion(file, { ...CPU_RULES, preset: { name: 'dp' } }, null);
    const asCpu = await service.previewConversion(file, CPU_RULES, null);
    assert.deepEqual([asDp.layoutBefore.kind, asDp.layoutAfter, asCpu.layoutAfter], ['dp', 'dp', 'cpu']);
    assert.deepEqual(asCpu.stateDicts[0]!.stripped, ['module.']);
    // rewritten in place (same inode, another size): the next preview reads the new content
    fs.copyFileSync(path.join(SAMPLE, 'digits-cnn', 'cpu.pt'), file);
    const after = await service.previewConversion(file, CPU_RULES, null);
    assert.equal(after.layoutBefore.kind, 'cpu');
    assert.deepEqual(after.stateDicts[0]!.stripped, []);
    // removed: a typed error, not the stale plan
    fs.rmSync(file);
    assert.equal((await apiError(service.previewConversion(file, CPU_RULES, null))).info.kind, 'io');
  });

  test('startConversion returns an id at once, then progress and a verified report', async () => {
    const out = path.join(tempDir('convert'), 'cpu.pt');
    const job = await service.startConversion(DP, CPU_RULES, out, false);
    assert.match(job, /^job-\d+$/);
    const end = await log.end(job);
    assert.equal(end.type, 'job-done', JSON.stringify(end));
    const done = end as Extract<ApiEvent, { type: 'job-done'; kind: 'convert' }>;
    assert.equal(done.kind, 'convert');
    assert.equal(done.result.verified, true);
    assert.equal(done.result.outputs[0]!.file, out);
    const progress = log.of(job).filter((e) => e.type === 'job-progress');
    assert.ok(progress.length >= 1, 'at least one progress event');
    const last = progress.at(-1) as Extract<ApiEvent, { type: 'job-progress' }>;
    assert.equal(last.progress.done, last.progress.total);
    const converted = await service.inspect(out);
    assert.equal(converted.layout.kind, 'cpu');
    assert.deepEqual(converted.layout.devices, { cpu: 16 });
  });

  test('an existing output without force ends in job-error, not a thrown exception', async () => {
    const out = path.join(tempDir('exists'), 'cpu.pt');
    fs.writeFileSync(out, 'keep me');
    const job = await service.startConversion(DP, CPU_RULES, out, false);
    const end = await log.end(job);
    assert.equal(end.type, 'job-error');
    assert.equal((end as Extract<ApiEvent, { type: 'job-error' }>).error.kind, 'exists');
    assert.equal(fs.readFileSync(out, 'utf8'), 'keep me');
  });

  test('cancelJob stops a long conversion and leaves nothing behind', async () => {
    const dir = tempDir('cancel');
    const src = bigSafetensors(path.join(dir, 'big.safetensors'));
    const out = path.join(dir, 'big.pt');
    const job = await service.startConversion(src, CPU_RULES, out, false);
    await log.waitFor((e) => e.type === 'job-progress' && e.job === job);
    await service.cancelJob(job);
    const end = await log.end(job);
    assert.equal(end.type, 'job-error', 'cancelled before it finished');
    assert.equal((end as Extract<ApiEvent, { type: 'job-error' }>).error.kind, 'cancelled');
    assert.deepEqual(fs.readdirSync(dir), ['big.safetensors']);
    await service.cancelJob(job); // finished: nothing to do
    assert.equal((await apiError(service.cancelJob('job-999999'))).info.kind, 'usage');
  });

  test('a batch over the sample workspace reports every item and a summary', async () => {
    const out = tempDir('batch');
    // the sample's whole pickled model is carried only with keepObjects (its classes need an import)
    const CPU_RULES_KEEP = { ...CPU_RULES, keepObjects: true };
    const plan = await service.planBatch(SAMPLE, out, CPU_RULES_KEEP);
    assert.equal(plan.items.length, 7);
    assert.ok(plan.items.every((i) => i.status === 'pending'));
    assert.equal(
      plan.totalBytes,
      plan.items.reduce((a, i) => a + i.bytes, 0),
    );
    const job = await service.startBatch(SAMPLE, out, CPU_RULES_KEEP, false, 2);
    const end = await log.end(job);
    assert.equal(end.type, 'job-done', JSON.stringify(end));
    const summary = (end as Extract<ApiEvent, { type: 'job-done'; kind: 'batch' }>).result;
    assert.equal(summary.done, 7);
    assert.equal(summary.failed, 0);
    const finished = log.of(job).filter((e) => e.type === 'batch-item' && e.item.status === 'done');
    assert.equal(finished.length, 7);
    const merged = summary.items.find((i) => i.family)!;
    assert.deepEqual(merged.sources, ['digits-cnn/ddp/rank0.pt', 'digits-cnn/ddp/rank1.pt']);
    assert.equal((await service.inspect(path.join(out, 'digits-cnn', 'dp.pt'))).layout.kind, 'cpu');
    // Run again: everything is already converted and verified.
    const again = await service.planBatch(SAMPLE, out, CPU_RULES_KEEP);
    assert.ok(again.items.every((i) => i.status === 'skipped'));
  });

  test('a batch into its own input folder is a job-error with a usage message', async () => {
    const job = await service.startBatch(SAMPLE, SAMPLE, CPU_RULES, false, 1);
    const end = await log.end(job);
    assert.equal(end.type, 'job-error');
    assert.match((end as Extract<ApiEvent, { type: 'job-error' }>).error.message, /must differ from the input folder/);
  });
});

const DIGITS = path.join(SAMPLE, 'digits-cnn');
const VERIFY: VerifyOptions = {
  model: path.join(DIGITS, 'model.onnx'),
  data: path.join(DIGITS, 'digits-test.npz'),
  checkpoint: path.join(DIGITS, 'cpu.pt'),
  against: DP,
  device: 'cpu',
};
const RESHARD: ReshardRequest = {
  inputs: [path.join(DIGITS, 'ddp')],
  target: { kind: 'single' },
  format: 'torch',
  output: '/tmp/never-written.pt',
  force: false,
  preset: null,
  takeRank: null,
  dryRun: false,
};
let verified: VerifyReport | null = null;

describe('jobStatus', () => {
  test('a running job answers with its progress; a cancelled one with its error; an unknown id with unknown', async () => {
    const dir = tempDir('status');
    const src = bigSafetensors(path.join(dir, 'big.safetensors'));
    const job = await service.startConversion(src, CPU_RULES, path.join(dir, 'big.pt'), false);
    const first = await log.waitFor((e) => e.type === 'job-progress' && e.job === job);
    const running = await service.jobStatus(job);
    assert.equal(running.state, 'running');
    assert.equal(running.kind, 'convert');
    assert.equal(running.progress?.unit, (first as Extract<ApiEvent, { type: 'job-progress' }>).progress.unit);
    assert.ok(running.progress!.done >= 0 && running.progress!.total > 0);
    await service.cancelJob(job);
    await log.end(job);
    const ended = await service.jobStatus(job);
    assert.equal(ended.state, 'error');
    assert.equal(ended.error?.kind, 'cancelled');
    assert.equal(ended.result, undefined);
    assert.deepEqual(await service.jobStatus('job-999999'), { state: 'unknown' });
  });
});

describe('verification jobs', () => {
  test("startVerify: progress in samples, then a PASS report with torch's accuracy and the wrong samples drawn", async () => {
    const job = await service.startVerify(VERIFY);
    const end = await log.end(job, 60_000);
    assert.equal(end.type, 'job-done', JSON.stringify(end));
    const done = end as Extract<ApiEvent, { type: 'job-done'; kind: 'verify' }>;
    assert.equal(done.kind, 'verify');
    const r = done.result;
    verified = r;
    assert.equal(r.verdict, 'PASS');
    assert.equal(r.comparison.bitIdentical, true);
    assert.equal(r.runs[0]!.metrics.correct, 356);
    assert.equal(r.runs[1]!.label, 'against');
    assert.equal(r.provider.used, 'cpu');
    // no prediction changed; the four samples both runs get wrong come with their 8×8 pixels
    assert.deepEqual(
      r.examples!.map((e) => e.why),
      ['wrong', 'wrong', 'wrong', 'wrong'],
    );
    for (const e of r.examples!) {
      assert.equal(e.predicted['checkpoint'], e.predicted['against']);
      assert.notEqual(e.predicted['checkpoint'], e.label);
      assert.deepEqual([e.image.width, e.image.height, e.image.channels], [8, 8, 1]);
      assert.equal(Buffer.from(e.image.pixels, 'base64').length, 64);
    }
    const progress = log.of(job).filter((e): e is Extract<ApiEvent, { type: 'job-progress' }> => e.type === 'job-progress');
    assert.ok(progress.length >= 2);
    assert.ok(progress.every((e) => e.progress.unit === 'samples'));
    assert.deepEqual([progress.at(-1)!.progress.done, progress.at(-1)!.progress.total], [360, 360]);
    const status = await service.jobStatus(job);
    assert.equal(status.state, 'done');
    assert.equal(status.kind, 'verify');
    assert.equal((status.result as VerifyReport).verdict, 'PASS');
  });

  test('a missing graph ends in job-error with its kind', async () => {
    const job = await service.startVerify({ ...VERIFY, model: path.join(DIGITS, 'nope.onnx') });
    const end = await log.end(job);
    assert.equal(end.type, 'job-error');
    assert.equal((end as Extract<ApiEvent, { type: 'job-error' }>).error.kind, 'io');
    assert.match((end as Extract<ApiEvent, { type: 'job-error' }>).error.message, /nope\.onnx/);
  });

  test('verifyReportHtml renders the report as the page ckpt verify --report writes', async () => {
    assert.ok(verified, 'the verification above ran');
    const html = await service.verifyReportHtml(verified);
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<span class="verdict pass">PASS<\/span>/);
    assert.match(html, /98\.89%/);
    // whatever a report says, nothing unescaped reaches the page
    const evil = { ...verified, reasons: ['<img src=x onerror=alert(1)>'], options: { ...verified.options, checkpoint: '/x/<script>.pt' } };
    const page = await service.verifyReportHtml(evil);
    assert.doesNotMatch(page, /<img src=x|<script>\.pt/);
    const bad: [unknown, RegExp][] = [
      [{ ...verified, version: 2 }, /report\.version must be 1/],
      [
        { ...verified, runs: [{ ...verified.runs[0]!, metrics: { ...verified.runs[0]!.metrics, logitsSha256: '<b>' } }] },
        /report\.runs\[0\]\.metrics\.logitsSha256 must be a sha256/,
      ],
      [{ ...verified, data: { ...verified.data, samples: '<i>360</i>' } }, /report\.data\.samples must be a whole number/],
      [{ ...verified, provider: { ...verified.provider, deviceId: '0<' } }, /report\.provider\.deviceId must be a whole number/],
      ['PASS', /report must be an object/],
    ];
    for (const [report, message] of bad) {
      const e = await apiError(service.verifyReportHtml(report as VerifyReport));
      assert.equal(e.info.kind, 'usage');
      assert.match(e.info.message, message);
    }
  });
});

describe('re-shard jobs', () => {
  test('planReshard reads both layouts and writes nothing, whatever dryRun says', async () => {
    const out = path.join(tempDir('plan'), 'merged.pt');
    const r = await service.planReshard({ ...RESHARD, output: out });
    assert.equal(r.written, false);
    assert.equal(r.plan.request.dryRun, true);
    assert.equal(r.plan.input.kind, 'rank-family');
    assert.deepEqual(
      r.plan.input.columns.map((c) => c.rank),
      [0, 1],
    );
    assert.equal(r.plan.input.rows.length, 16);
    assert.ok(r.plan.input.rows.every((row) => row.spread === 'replicated' && row.pieces.filter((p) => p.replica).length === 1));
    assert.equal(r.plan.output.columns.length, 1);
    assert.deepEqual(r.plan.errors, []);
    assert.ok(!fs.existsSync(out));
  });

  test('startReshard merges the identical ranks: progress with its phase, a verified output, and its status', async () => {
    const out = path.join(tempDir('reshard'), 'merged.pt');
    const job = await service.startReshard({ ...RESHARD, output: out });
    const end = await log.end(job, 60_000);
    assert.equal(end.type, 'job-done', JSON.stringify(end));
    const done = end as Extract<ApiEvent, { type: 'job-done'; kind: 'reshard' }>;
    assert.equal(done.kind, 'reshard');
    assert.equal(done.result.verified, true);
    assert.equal(done.result.written, true);
    assert.deepEqual(
      done.result.outputs.map((o) => [o.file, o.tensors, o.verified]),
      [[out, 16, true]],
    );
    const phases = log.of(job).flatMap((e) => (e.type === 'job-progress' && 'phase' in e.progress ? [e.progress.phase] : []));
    assert.ok(phases.includes('compare') && phases.includes('write'), phases.join(', '));
    assert.equal((await service.jobStatus(job)).state, 'done');
    assert.equal((await service.inspect(out)).totals.tensors, 16);
  });

  test('an existing output without force: the plan says so, the job writes nothing', async () => {
    const dir = tempDir('reshard-exists');
    const out = path.join(dir, 'merged.pt');
    fs.writeFileSync(out, 'keep me');
    const plan = await service.planReshard({ ...RESHARD, output: out });
    assert.ok(
      plan.plan.errors.some((e) => /exists/.test(e)),
      plan.plan.errors.join('; '),
    );
    const job = await service.startReshard({ ...RESHARD, output: out });
    const end = await log.end(job);
    assert.equal(end.type, 'job-done');
    assert.equal((end as Extract<ApiEvent, { type: 'job-done'; kind: 'reshard' }>).result.written, false);
    assert.equal(fs.readFileSync(out, 'utf8'), 'keep me');
  });
});

describe('argument checks', () => {
  const bad: [string, () => Promise<unknown>, RegExp][] = [
    ['relative file', () => service.inspect('dp.pt'), /file must be an absolute path/],
    ['number as file', () => service.inspect(42 as unknown as string), /file must be a string, not number/],
    ['bins out of range', () => service.tensorStats(DP, ['x'], 0), /bins must be a whole number from 1 to 1024/],
    ['rules missing a field', () => service.previewConversion(DP, { preset: null } as never, null), /rules\.stripPrefixes is missing/],
    ['unknown rule field', () => service.previewConversion(DP, { ...CPU_RULES, evil: 1 } as never, null), /rules has an unknown field 'evil'/],
    [
      'bad preset',
      () => service.previewConversion(DP, { ...CPU_RULES, preset: { name: 'tpu' } } as never, null),
      /rules\.preset\.name must be cpu, gpu, dp or ddp/,
    ],
    ['bad regex', () => service.previewConversion(DP, { ...CPU_RULES, exclude: '(' }, null), /rules\.exclude: '\(' is not a valid regular expression/],
    [
      'bad map location',
      () => service.previewConversion(DP, { ...CPU_RULES, mapLocation: [{ from: 'cuda:0', to: 'gpu0' }] }, null),
      /'gpu0' is not a device tag/,
    ],
    ['force not boolean', () => service.startConversion(DP, CPU_RULES, null, 'yes' as never), /force must be true or false/],
    ['jobs out of range', () => service.startBatch(SAMPLE, '/tmp/x', CPU_RULES, false, 0), /jobs must be a whole number from 1 to 64/],
    ['too many arguments', () => (service.inspect as (...a: unknown[]) => Promise<unknown>)(DP, 'extra'), /inspect takes 1 argument \(file\), not 2/],
    ['bad device tag', () => service.devicePlan({ 'cuda:0; rm -rf': 1 }), /is not a device tag/],
    ['bad world size', () => service.devicePlan({ 'cuda:0': 1 }, 0), /ddpWorldSize must be a whole number/],
    ['bad job id', () => service.cancelJob('../../etc'), /job must be a job id/],
    ['bad chooser kind', () => service.chooseFile('anything' as never), /kind must be one of file, folder, save/],
    ['bad job id for status', () => service.jobStatus('job-x'), /job must be a job id/],
    ['dropped name with a folder', () => service.uploadDroppedFile('../x.pt', ''), /name must be a file name without folders/],
    // the name is joined to the session folder: none may lead out of it, or name the folder itself
    ...['..', '.', '', 'a\\..\\x.pt', '/etc/passwd', 'x'.repeat(256)].map((name): [string, () => Promise<unknown>, RegExp] => [
      `dropped name ${JSON.stringify(name.slice(0, 20))}`,
      () => service.uploadDroppedFile(name, ''),
      /name must be a file name without folders/,
    ]),
    ['dropped name with a NUL', () => service.uploadDroppedFile('x.pt\0', ''), /name contains a NUL character/],
    ['dropped bytes not base64', () => service.uploadDroppedFile('x.pt', 'not base64!'), /base64 must be base64 of at most 32 MiB/],
    ['drop search relative folder', () => service.findDroppedFile('x.pt', 1, 0, ['rel']), /folders\[0\] must be an absolute path/],
    ['verify: relative model', () => service.startVerify({ ...VERIFY, model: 'model.onnx' }), /options\.model must be an absolute path/],
    [
      'verify: missing test set',
      () => service.startVerify({ model: VERIFY.model, checkpoint: VERIFY.checkpoint } as VerifyOptions),
      /options\.data must be a string, not nothing/,
    ],
    ['verify: bad device', () => service.startVerify({ ...VERIFY, device: 'tpu:0' }), /options\.device must be auto, cpu, cuda or cuda:N/],
    ['verify: batch size 0', () => service.startVerify({ ...VERIFY, batchSize: 0 }), /options\.batchSize must be a whole number from 1 to 65536/],
    ['verify: fractional limit', () => service.startVerify({ ...VERIFY, limit: 1.5 }), /options\.limit must be a whole number/],
    ['verify: negative atol', () => service.startVerify({ ...VERIFY, atol: -1 }), /options\.atol must be a number of 0 or more/],
    ['verify: zero bnEps', () => service.startVerify({ ...VERIFY, bnEps: 0 }), /options\.bnEps must be a number above 0/],
    ['verify: unknown field', () => service.startVerify({ ...VERIFY, shell: 'rm -rf /' } as VerifyOptions), /options has an unknown field 'shell'/],
    [
      'verify: bad layout',
      () => service.startVerify({ ...VERIFY, preprocess: { layout: 'CHWN' as never } }),
      /options\.preprocess\.layout must be one of NCHW, NHWC/,
    ],
    ['verify: zero std', () => service.startVerify({ ...VERIFY, preprocess: { std: [0.5, 0] } }), /options\.preprocess\.std\[1\] must not be 0/],
    [
      'verify: bad data format',
      () => service.startVerify({ ...VERIFY, dataFormat: 'csv' as never }),
      /options\.dataFormat must be one of npz, idx, cifar, imagefolder/,
    ],
    ['reshard: no inputs', () => service.planReshard({ ...RESHARD, inputs: [] }), /request\.inputs must name at least one file or folder/],
    ['reshard: relative input', () => service.planReshard({ ...RESHARD, inputs: ['ddp'] }), /request\.inputs\[0\] must be an absolute path/],
    [
      'reshard: bad target',
      () => service.planReshard({ ...RESHARD, target: { kind: 'tp' } as never }),
      /request\.target\.kind must be single, ranks, dcp or shards/,
    ],
    [
      'reshard: zero ranks',
      () => service.startReshard({ ...RESHARD, target: { kind: 'dcp', ranks: 0 } }),
      /request\.target\.ranks must be a whole number from 1 to 4096/,
    ],
    [
      'reshard: stray target field',
      () => service.planReshard({ ...RESHARD, target: { kind: 'single', count: 2 } as never }),
      /request\.target has an unknown field 'count'/,
    ],
    [
      'reshard: bad shard size',
      () => service.planReshard({ ...RESHARD, target: { kind: 'shards', maxShardBytes: -5 } }),
      /request\.target\.maxShardBytes must be a whole number/,
    ],
    ['reshard: bad format', () => service.planReshard({ ...RESHARD, format: 'gguf' as never }), /request\.format must be one of torch, safetensors/],
    ['reshard: missing field', () => service.planReshard((({ takeRank: _, ...rest }) => rest)(RESHARD) as never), /request\.takeRank is missing/],
    ['reshard: negative rank', () => service.startReshard({ ...RESHARD, takeRank: -1 }), /request\.takeRank must be a whole number from 0/],
    [
      'reshard: bad preset',
      () => service.startReshard({ ...RESHARD, preset: { name: 'ddp', worldSize: 0 } }),
      /request\.preset\.worldSize must be a whole number/,
    ],
  ];
  for (const [name, call, message] of bad) {
    test(`${name} → usage error`, async () => {
      const e = await apiError(call());
      assert.equal(e.info.kind, 'usage');
      assert.match(e.info.message, message);
    });
  }
});

describe('devices', () => {
  test('readDevices answers on any machine, and devicePlan plans the DP tags against it', async () => {
    const reading = await service.readDevices();
    assert.ok(['ok', 'no-nvidia-smi', 'error'].includes(reading.status));
    assert.equal(reading.platform, process.platform);
    const plan = await service.devicePlan({ 'cuda:0': 16 }, 2);
    assert.deepEqual(
      plan.tags.map((t) => t.tag),
      ['cuda:0'],
    );
    assert.equal(plan.tags[0]!.tensors, 16);
    if (reading.gpus.length === 0) {
      assert.equal(plan.loadsAsIs, false);
      assert.equal(plan.fix?.preset, 'cpu');
    }
  });

  test('watchDevices pushes readings every interval while watched, and stops after', async () => {
    const watched = createApiService({ shell: 'web', configDir, devicePollMs: 50 });
    const seen: ApiEvent[] = [];
    const off = watched.onEvent((e) => seen.push(e));
    try {
      await watched.watchDevices(true);
      const t0 = Date.now();
      while (seen.filter((e) => e.type === 'devices').length < 2 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 20));
      assert.ok(seen.filter((e) => e.type === 'devices').length >= 2, 'two readings');
      await watched.watchDevices(false);
      await new Promise((r) => setTimeout(r, 100)); // a read in flight may still land
      const count = seen.length;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(seen.length, count, 'no readings after unwatching');
    } finally {
      off();
      await watched.close();
    }
  });

  test('when the last listener leaves, the watch stops even if nobody unwatched', async () => {
    let reads = 0;
    const watched = createApiService({
      shell: 'web',
      configDir,
      devicePollMs: 20,
      readDevices: async () => {
        reads++;
        return service.readDevices();
      },
    });
    try {
      const off = watched.onEvent(() => {});
      await watched.watchDevices(true);
      await watched.watchDevices(true);
      await new Promise((r) => setTimeout(r, 150));
      assert.ok(reads >= 2);
      off();
      await new Promise((r) => setTimeout(r, 100));
      const after = reads;
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(reads, after);
    } finally {
      await watched.close();
    }
  });
});

test('a dropped file copied in lives in the session folder until the service closes', async () => {
  const own = createApiService({ shell: 'web', configDir });
  const copy = await own.uploadDroppedFile('small.pt', Buffer.from('hello').toString('base64'));
  assert.equal(fs.readFileSync(copy, 'utf8'), 'hello');
  assert.equal(path.basename(copy), 'small.pt');
  // a second drop of the same name (another folder's small.pt) is a second copy, not an overwrite
  const second = await own.uploadDroppedFile('small.pt', Buffer.from('other').toString('base64'));
  assert.notEqual(second, copy);
  assert.equal(path.basename(second), 'small.pt');
  assert.equal(fs.readFileSync(copy, 'utf8'), 'hello');
  assert.equal(fs.readFileSync(second, 'utf8'), 'other');
  await own.close();
  assert.equal(fs.existsSync(path.dirname(copy)), false);
  assert.equal(fs.existsSync(path.dirname(second)), false);
});
