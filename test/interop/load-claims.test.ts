// Every "loads" claim ckpt makes, checked against real torch 1.13 (Debian's python3) and torch
// 2.x (.venv-torch2) on the fixtures, the sample workspace and the real corpus:
//   - weightsOnly: torch 2.x's torch.load(f, weights_only=True) loads it, exactly when claimed
//     (torch 1.13 refuses whatever 2.x refuses; it hands TorchScript to torch.jit.load unchecked);
//   - torchLoad: plain torch.load reads the file, failing at most on a class it cannot import;
//   - how: the loader named (torch.jit.load, numpy.load, pickle.load, onnxruntime's InferenceSession) loads it.
// Dangerous pickles are never loaded with weights_only=False.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadClaims } from '../../shared/inspect.ts';
import { openCheckpoint } from '../../main/inputs/open-checkpoint.ts';
import { CORPUS_DIR, sharedSkipReason } from '../helpers/shared-dir.ts';
import { FIXTURES, IN_CI, PY, PY2, REPO, torchSkipReason } from './helpers.ts';

const skip =
  torchSkipReason() ?? sharedSkipReason() ?? (existsSync(PY2) ? null : `torch 2.x venv not found at ${PY2} (bash test/fixtures/setup-torch2.sh makes it)`);
if (skip && IN_CI) throw new Error(`load claims must be checked in CI: ${skip}`);
if (skip) console.log(`# skip: ${skip}`);

const SAMPLE = join(REPO, 'build', 'sample-workspace', 'digits-cnn');
const inDir = (dir: string, pick: (f: string) => boolean = (f) => /\.(pt|pth|tar|pkl|npz|npy|bin|ckpt|ptl|safetensors|onnx)$/.test(f)): string[] =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter(pick)
        .map((f) => join(dir, f))
    : [];

function files(): string[] {
  return [
    ...inDir(join(FIXTURES, 'torch')),
    ...inDir(join(FIXTURES, 'torch', 'ddp_gloo')),
    ...inDir(join(FIXTURES, 'torch2')),
    ...inDir(join(FIXTURES, 'tar')),
    join(FIXTURES, 'numpy', 'savez.npz'),
    join(FIXTURES, 'numpy', 'dtype_f4.npy'),
    join(FIXTURES, 'pickles', 'hand_dup.p1.pkl'),
    ...inDir(join(FIXTURES, 'verify', 'torch2', 'convt')),
    ...inDir(SAMPLE),
    ...inDir(join(SAMPLE, 'ddp')),
    ...inDir(CORPUS_DIR),
  ];
}

const PROBE = String.raw`
import json, sys, warnings, pickle
warnings.filterwarnings('ignore')
import torch, numpy
def first_line(e):
    return (type(e).__name__ + ': ' + str(e)).splitlines()[0][:200]
def attempt(fn):
    try:
        fn()
        return 'ok'
    except (ModuleNotFoundError, ImportError) as e:
        return 'missing-class: ' + first_line(e)
    except AttributeError as e:
        return ('missing-class: ' if "Can't get attribute" in str(e) else '') + first_line(e)
    except BaseException as e:
        return first_line(e)
out = {}
for c in json.load(sys.stdin):
    f = c['file']
    r = {'weights_only': attempt(lambda: torch.load(f, weights_only=True, map_location='cpu'))}
    if not c['dangerous']:
        r['full'] = attempt(lambda: torch.load(f, weights_only=False, map_location='cpu'))
    if c['loader'] == 'jit':
        r['how'] = attempt(lambda: torch.jit.load(f, map_location='cpu'))
    elif c['loader'] == 'numpy':
        r['how'] = attempt(lambda: numpy.load(f))
    elif c['loader'] == 'pickle' and not c['dangerous']:
        r['how'] = attempt(lambda: pickle.load(open(f, 'rb')))
    out[f] = r
print(json.dumps(out))
`;

interface Probe {
  weights_only: string;
  full?: string;
  how?: string;
}

function probe(python: string, specs: { file: string; dangerous: boolean; loader: string }[]): Map<string, Probe> {
  const r = spawnSync(python, ['-I', '-B', '-c', PROBE], { input: JSON.stringify(specs), encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `${python}: ${r.stderr}`);
  return new Map(Object.entries(JSON.parse(r.stdout) as Record<string, Probe>));
}

const LOADERS: [prefix: string, loader: string][] = [
  ['torch.jit.load(', 'jit'],
  ['numpy.load(', 'numpy'],
  ['pickle.load(', 'pickle'],
  ['onnxruntime.InferenceSession(', 'onnx'],
];
const loaderOf = (how: string): string => LOADERS.find(([prefix]) => how.startsWith(prefix))?.[1] ?? 'torch';

/** An ONNX graph's claimed loader, onnxruntime's InferenceSession (run here through onnxruntime-node, the same runtime). */
async function onnxruntimeLoads(file: string): Promise<string> {
  const ort = await import('onnxruntime-node');
  try {
    await (await ort.InferenceSession.create(file)).release();
    return 'ok';
  } catch (e) {
    return String(e).split('\n')[0]!;
  }
}

test('every loads claim is what torch 1.13 and 2.x do, on the fixtures, the sample and the real corpus', {
  skip: skip ?? false,
  timeout: 900_000,
}, async () => {
  const claims = new Map<string, { loading: LoadClaims; format: string; verdict: string }>();
  for (const file of files()) {
    let ck;
    try {
      ck = openCheckpoint(file);
    } catch {
      continue; // ckpt refuses it and claims nothing
    }
    try {
      claims.set(file, { loading: ck.report.loading!, format: ck.report.format, verdict: ck.report.security.verdict });
    } finally {
      ck.close();
    }
  }
  assert.ok(claims.size >= 90, `only ${claims.size} files claimed about`);
  console.log(`${claims.size} files checked against torch 1.13 and 2.x`);
  const specs = [...claims].map(([file, c]) => ({ file, dangerous: c.verdict === 'dangerous', loader: loaderOf(c.loading.how) }));
  const torch1 = probe(PY, specs);
  const torch2 = probe(PY2, specs);
  const wrong: string[] = [];
  const seen = new Set<string>();
  for (const [file, c] of claims) {
    const name = `${file.slice(file.lastIndexOf('/') + 1)} (${c.format})`;
    const t1 = torch1.get(file)!;
    const t2 = torch2.get(file)!;
    const l = c.loading;
    if (l.weightsOnly !== (t2.weights_only === 'ok'))
      wrong.push(`${name}: claims weights_only=True ${l.weightsOnly ? 'loads' : 'refuses'}; torch 2.x: ${t2.weights_only}`);
    // torch 1.13 hands TorchScript to torch.jit.load without looking at weights_only, and still
    // loaded the .tar format with it; its allow-list is otherwise narrower than 2.x's, so what
    // 2.x refuses 1.13 refuses too.
    if (c.format === 'torchscript' && t1.how === 'ok' && t1.weights_only !== 'ok') wrong.push(`${name}: torch 1.13 weights_only=True: ${t1.weights_only}`);
    if (c.format === 'torch-tar' && t1.weights_only !== 'ok') wrong.push(`${name}: claims torch 1.13 loaded it; ${t1.weights_only}`);
    if (['torch-zip', 'torch-legacy'].includes(c.format) && !l.weightsOnly && t1.weights_only === 'ok')
      wrong.push(`${name}: claims weights_only=True refuses it; torch 1.13 loads it`);
    const torchFormat = ['torch-zip', 'torch-legacy', 'torch-tar', 'torchscript'].includes(c.format);
    for (const [v, t] of [
      ['1.13', t1],
      ['2.x', t2],
    ] as const) {
      if (v === '2.x' || torchFormat) {
        if (t.full !== undefined && l.torchLoad !== (t.full === 'ok' || t.full.startsWith('missing-class')))
          wrong.push(`${name}: claims torch.load ${l.torchLoad ? 'reads' : 'cannot read'} it; torch ${v}: ${t.full}`);
      }
      if (t.how !== undefined && t.how !== 'ok' && l.torchLoad) wrong.push(`${name}: claims ${l.how} loads it; torch ${v}: ${t.how}`);
    }
    if (loaderOf(l.how) === 'onnx') {
      const ort = await onnxruntimeLoads(file);
      if (ort !== 'ok') wrong.push(`${name}: claims ${l.how} loads it; onnxruntime: ${ort}`);
    }
    seen.add(`${c.format}:${l.weightsOnly}`);
  }
  assert.deepEqual(wrong, []);
  // The check covered refusals and loads across formats, not one kind of file.
  for (const k of [
    'torch-zip:true',
    'torch-zip:false',
    'torch-legacy:true',
    'torch-legacy:false',
    'torchscript:false',
    'npz:false',
    'torch-tar:false',
    'safetensors:true',
    'onnx:false',
  ])
    assert.ok(seen.has(k), `no ${k} file was checked`);
});
