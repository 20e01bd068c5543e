// `ckpt inspect` as a user runs it: the built CLI in a child process, on real fixtures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InspectReport } from '../../../shared/inspect.ts';
import { runCli } from '../../helpers/run-cli.ts';

const fx = (p: string): string => new URL(`../../fixtures/torch/${p}`, import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'ckpt-cli-'));

test('inspect --json on a DataParallel state dict', () => {
  const r = runCli(['inspect', fx('dp_state_dict.pt'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as InspectReport;
  assert.equal(j.format, 'torch-zip');
  assert.equal(j.layout.kind, 'dp');
  assert.deepEqual(j.layout.prefixes, ['module.']);
  assert.deepEqual(j.layout.devices, { cpu: 16 });
  assert.equal(j.tensors.length, 16);
  const w = j.tensors.find((t) => t.path[0] === 'module.conv1.weight')!;
  assert.deepEqual([w.dtype, w.shape, w.device, w.nbytes], ['float32', [4, 1, 3, 3], 'cpu', 144]);
  assert.equal(j.security.verdict, 'safe');
});

test('inspect --json lists a whole pickled DataParallel model by attribute path, with its state_dict keys', () => {
  const r = runCli(['inspect', fx('whole_model_dp.pt'), '--json']);
  const j = JSON.parse(r.stdout) as InspectReport;
  assert.equal(j.tensors.length, 16);
  assert.deepEqual(j.tensors[0]!.path, ['_modules', 'module', '_modules', 'conv1', '_parameters', 'weight']);
  assert.equal(j.moduleStateDicts![0]!.keys[0], 'module.conv1.weight');
  assert.equal(j.security.verdict, 'unknown-class');
  assert.ok(j.security.globals.some((g) => g.name === 'fixture_models.SmallCNN' && g.class === 'unknown-class'));
});

test('inspect marks tied and view tensors as shared', () => {
  const j = JSON.parse(runCli(['inspect', fx('views.pt'), '--json']).stdout) as InspectReport;
  const byPath = new Map(j.tensors.map((t) => [t.path.join('/'), t]));
  assert.equal(byPath.get('transpose')!.shared, true);
  assert.equal(byPath.get('empty')!.nbytes, 0);
});

test('inspect flags a malicious pickle in red and never runs it', () => {
  const r = runCli(['inspect', fx('malicious.pt')]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /DANGEROUS/);
  assert.match(r.stdout, /posix\.system\("echo pwned/);
  const j = JSON.parse(runCli(['inspect', fx('malicious_legacy.pt'), '--json']).stdout) as InspectReport;
  assert.equal(j.security.verdict, 'dangerous');
});

test('human output shows format, layout verdict with evidence, counts and the key tree', () => {
  const r = runCli(['inspect', fx('ddp_cuda_tagged/rank1.pt')]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /layout\s+DistributedDataParallel rank \(ddp\), prefixes 'module\.'/);
  assert.match(r.stdout, /cuda:1 16/);
  assert.match(r.stdout, /conv1\.\s+prefix 2 tensors/);
});

function expectError(args: string[], kind: RegExp): string {
  const r = runCli(args);
  assert.equal(r.code, 2, `exit code for ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, kind);
  assert.doesNotMatch(r.stderr, /\n\s+at\s/, 'no stack trace');
  return lines[0]!;
}

test('bad inputs give exit code 2 and one line that says what to do', () => {
  const text = join(tmp, 'notes.txt');
  writeFileSync(text, 'hello, this is not a checkpoint\n');
  expectError(['inspect', text], /not a PyTorch checkpoint/);
  const lfs = join(tmp, 'model.pt');
  writeFileSync(lfs, 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12345\n');
  expectError(['inspect', lfs], /Git LFS pointer.*git lfs pull/);
  const cut = join(tmp, 'cut.pt');
  const whole = readFileSync(fx('cpu_state_dict.pt'));
  writeFileSync(cut, whole.subarray(0, whole.length >> 1));
  expectError(['inspect', cut], /truncated/);
  const empty = join(tmp, 'empty.pt');
  writeFileSync(empty, '');
  expectError(['inspect', empty], /empty/);
  expectError(['inspect', join(tmp, 'missing.pt')], /no such file/);
  expectError(['inspect', tmp], /is a folder/);
  expectError(['inspect'], /usage/);
  expectError(['inspct', 'x'], /unknown command 'inspct'/);
  expectError(['inspect', fx('dp_state_dict.pt'), '--frobnicate'], /usage/);
});

test("inspect on an ONNX graph lists its initializers and says what reads it (not 'not a PyTorch checkpoint')", () => {
  const onnx = new URL('../../../build/sample-workspace/digits-cnn/model.onnx', import.meta.url).pathname;
  const r = runCli(['inspect', onnx]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^format {6}onnx {2}ir_version=7, opset=13, producer=pytorch 1\.13\.0, nodes=7$/m);
  assert.match(r.stdout, /^tensors {5}6 tensors in 6 storages, 14\.9 KiB$/m);
  assert.match(r.stdout, /^security {4}safe: it holds no pickle, so reading it runs no code$/m);
  assert.match(r.stdout, /^loads {7}onnxruntime\.InferenceSession\(f\)$/m);
  assert.match(r.stdout, /onnx::Conv_27 {2}float32\[8, 1, 3, 3\] cpu/);
  const c = runCli(['convert', onnx, '--preset', 'cpu', '-o', join(tmp, 'from-onnx.pt')]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /an ONNX graph, not a torch checkpoint: ckpt convert does not rewrite it/);
});

test("one tensor is '1 tensor', never '1 tensors', in inspect and convert", () => {
  const npy = new URL('../../fixtures/numpy/dtype_f4.npy', import.meta.url).pathname;
  const i = runCli(['inspect', npy]);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /^tensors {5}1 tensor in 1 storage, 24 B$/m);
  assert.match(i.stdout, /^here {8}The 1 tensor loads as saved: cpu → CPU\.$/m);
  const c = runCli(['convert', npy, '--preset', 'gpu', '-o', join(tmp, 'one.pt')]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /devices: cpu → cuda:0 \(1 tensor, 24 B\)/);
  assert.match(c.stdout, /verified: 1 tensor, CRC-32 of 1 storage equal to the source/);
  for (const out of [i.stdout, c.stdout]) assert.doesNotMatch(out, /\b1 (tensors|keys|storages)\b/);
});

test('inspect (text) counts the tensor paths that share a storage as the JSON list marks them', () => {
  for (const [file, expected] of [
    ['views.pt', 8],
    ['dp_state_dict.pt', 0],
  ] as const) {
    const j = JSON.parse(runCli(['inspect', fx(file), '--json', '--no-devices']).stdout) as InspectReport;
    assert.equal(j.tensors.filter((t) => t.shared).length, expected, file);
    const text = runCli(['inspect', fx(file), '--no-devices']).stdout;
    if (expected) assert.match(text, new RegExp(`${expected} tensor paths share a storage with another`), file);
    else assert.doesNotMatch(text, /share a storage/, file);
  }
});
