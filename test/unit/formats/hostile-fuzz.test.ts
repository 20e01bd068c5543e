// The structure-aware fuzzer (test/fuzz/generators.ts) against the real CLI: every case runs
// `ckpt inspect` in its own child process and must end within 10 s of CPU time (wall time on a
// loaded shared machine says little; a hang is caught at twice that in wall time) and 500 MiB peak RSS, with
// exit 0, or exit 2 and one line naming the input, never a stack trace. The normal suite runs a
// smoke of FUZZ_CASES (default 3) cases per family; `npm run fuzz` runs more (FUZZ_CASES=40).
// Needs `npm run build` (dist/ckpt.js). A failure prints the family and seed that reproduce it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAMILIES, writeCase, type Family } from '../../fuzz/generators.ts';
import { runMeasured } from '../../fuzz/measured-cli.ts';

const CASES = Number(process.env['FUZZ_CASES'] ?? 3);
const FIRST_SEED = Number(process.env['FUZZ_SEED'] ?? 1);
const BUDGET_MS = 10_000;
const BUDGET_MIB = 500;
const PARALLEL = Number(process.env['FUZZ_PARALLEL'] ?? 2);

async function runCase(family: Family, seed: number, root: string): Promise<string | null> {
  const dir = join(root, `${family}-${seed}`);
  const input = writeCase(family, seed, dir);
  const r = await runMeasured(['inspect', input], { timeoutMs: BUDGET_MS * 2 });
  const id = `${family} seed ${seed}`;
  try {
    if (r.timedOut) return `${id}: still running after ${BUDGET_MS * 2} ms`;
    if (r.cpuMs === null || r.cpuMs > BUDGET_MS) return `${id}: used ${Math.round(r.cpuMs ?? r.ms)} ms of CPU`;
    if (r.peakMiB === null || r.peakMiB > BUDGET_MIB) return `${id}: peak RSS ${r.peakMiB?.toFixed(0) ?? '(unknown)'} MiB`;
    if (r.code !== 0 && r.code !== 2) return `${id}: exit ${r.code ?? r.signal}: ${r.stderr.slice(0, 300)}`;
    if (/\n\s+at /.test(r.stderr)) return `${id}: a stack trace: ${r.stderr.slice(0, 300)}`;
    if (r.code === 2) {
      const lines = r.stderr.trimEnd().split('\n');
      if (lines.length !== 1) return `${id}: ${lines.length} error lines: ${r.stderr.slice(0, 300)}`;
      if (!lines[0]!.includes(dir)) return `${id}: the error does not name the input: ${lines[0]}`;
      if (/internal error|Maximum call stack|declared size is larger|Invalid string length/.test(lines[0]!)) return `${id}: not the real cause: ${lines[0]}`;
    }
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test(`fuzz: ${CASES} structure-aware cases per family (${FAMILIES.join(', ')}) through the CLI, each within ${BUDGET_MS / 1000} s and ${BUDGET_MIB} MiB`, async () => {
  const root = mkdtempSync(join(tmpdir(), 'ckpt-fuzz-'));
  const queue: [Family, number][] = [];
  for (let s = FIRST_SEED; s < FIRST_SEED + CASES; s++) for (const f of FAMILIES) queue.push([f, s]);
  const failures: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const problem = await runCase(next[0], next[1], root);
          if (problem) failures.push(problem);
        }
      }),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(failures, []);
});
