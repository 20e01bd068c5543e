// Fuzz smoke test: thousands of byte-level mutations of real fixtures. Each must end in a
// reading or a typed CheckpointError, quickly: never a crash, a hang or an untyped exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { analyse } from '../../../main/checkpoint/inspect.ts';
import { readTensorBytes } from '../../../main/checkpoint/tensor-bytes.ts';
import { CheckpointError } from '../../../main/errors.ts';
import { openReader } from '../../../main/formats/open-format.ts';
import { BufferReader } from '../../../main/io/random-access.ts';
import { rng } from '../../fuzz/generators.ts';

const fixture = (p: string): string => new URL(`../../fixtures/${p}`, import.meta.url).pathname;
const SEEDS = [
  'torch/cpu_state_dict.pt',
  'torch/legacy_training_checkpoint.pt',
  'torch/torchscript.pt',
  'torch/views.pt',
  'torch/whole_model_dp.pt',
  'torch/nested_containers.pt',
  'torch/malicious.pt',
  'torch/dtypes.pt',
  'tar/legacy_tar.pt',
];
const CASES_PER_SEED = Number(process.env['FUZZ_CASES'] ?? 600);
/** Per-case bound: generous for a loaded 2-core CI machine; typical cases take well under 5 ms. */
const CASE_LIMIT_MS = 2000;

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  const b = Uint8Array.from(src);
  const kind = Math.floor(r() * 6);
  const at = Math.floor(r() * b.length);
  switch (kind) {
    case 0: {
      // flip a few random bytes
      const n = 1 + Math.floor(r() * 8);
      for (let i = 0; i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    }
    case 1:
      return b.subarray(0, at); // truncate
    case 2: {
      // set a run to an extreme value (lengths, sizes)
      const len = 1 + Math.floor(r() * 8);
      b.fill(r() < 0.5 ? 0xff : 0x00, at, at + len);
      return b;
    }
    case 3: {
      // delete a run
      const len = 1 + Math.floor(r() * 32);
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + len)]);
    }
    case 4: {
      // duplicate a run
      const len = 1 + Math.floor(r() * 32);
      return Uint8Array.from([...b.subarray(0, at + len), ...b.subarray(at, at + len), ...b.subarray(at + len)]);
    }
    default: {
      // mutate inside the pickle/header area, where structure lives
      const n = 1 + Math.floor(r() * 4);
      for (let i = 0; i < n; i++) {
        const at = Math.floor(r() * Math.min(b.length, 2048));
        b[at] = b[at]! ^ (1 << Math.floor(r() * 8));
      }
      return b;
    }
  }
}

for (const seedFile of SEEDS) {
  test(`fuzz: ${CASES_PER_SEED} mutations of ${seedFile} give a result or a typed error`, () => {
    const src = readFileSync(fixture(seedFile));
    const r = rng(0x9e3779b9 ^ (seedFile.length * 7919));
    let ok = 0;
    let typed = 0;
    let slowest = 0;
    for (let i = 0; i < CASES_PER_SEED; i++) {
      const bytes = mutate(src, r);
      const t0 = performance.now();
      try {
        const reading = openReader(new BufferReader(bytes, `case-${i}`));
        const c = analyse(`case-${i}`, reading);
        for (const t of c.tensors.slice(0, 8)) if (t.tensor.storage) readTensorBytes(t.tensor);
        JSON.stringify(c.report);
        ok++;
      } catch (e) {
        if (!(e instanceof CheckpointError)) {
          assert.fail(`case ${i} of ${seedFile}: untyped ${(e as Error)?.constructor?.name}: ${(e as Error)?.stack ?? e}`);
        }
        assert.ok(!e.message.includes('\n'), `case ${i}: message has several lines`);
        typed++;
      }
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      assert.ok(ms < CASE_LIMIT_MS, `case ${i} of ${seedFile} took ${ms.toFixed(0)} ms`);
    }
    console.log(`# ${seedFile}: ${ok} read, ${typed} typed errors, slowest ${slowest.toFixed(1)} ms`);
  });
}
