/**
 * Which Python runs `ckpt verify --model-class`: the one named by --python, else the first on the
 * user's PATH (and of an active venv or conda environment) that imports torch. The report says which.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors.ts';

export interface ChosenPython {
  python: string;
  /** `--python`, or how it was found (`VIRTUAL_ENV`, `CONDA_PREFIX`, `PATH`) */
  how: string;
}

function hasTorch(python: string): Promise<boolean> {
  return new Promise((res) => {
    execFile(python, ['-c', 'import torch'], { timeout: 60_000 }, (err) => res(!err));
  });
}

/** Interpreters to try, in order, without duplicates (by resolved path). */
export function candidatePythons(env: NodeJS.ProcessEnv = process.env): ChosenPython[] {
  const exe = process.platform === 'win32' ? ['python.exe', 'python3.exe'] : ['python3', 'python'];
  const bin = process.platform === 'win32' ? 'Scripts' : 'bin';
  const out: ChosenPython[] = [];
  for (const [how, root] of [
    ['VIRTUAL_ENV', env['VIRTUAL_ENV']],
    ['CONDA_PREFIX', env['CONDA_PREFIX']],
  ] as const) {
    if (root) for (const e of exe) out.push({ python: path.join(root, process.platform === 'win32' && how === 'CONDA_PREFIX' ? '' : bin, e), how });
  }
  for (const dir of (env['PATH'] ?? '').split(path.delimiter).filter(Boolean)) for (const e of exe) out.push({ python: path.join(dir, e), how: 'PATH' });
  const seen = new Set<string>();
  return out.filter((c) => {
    let real: string;
    try {
      real = fs.realpathSync(c.python);
      fs.accessSync(real, fs.constants.X_OK);
    } catch {
      return false;
    }
    if (seen.has(real)) return false;
    seen.add(real);
    return true;
  });
}

/** The interpreter --python names, if it names one: chosen without looking further. */
export function namedPython(given: string | null | undefined): ChosenPython | null {
  return given ? { python: given, how: '--python' } : null;
}

export async function choosePython(given: string | null | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ChosenPython> {
  const named = namedPython(given);
  if (named) return named;
  const tried: string[] = [];
  for (const c of candidatePythons(env)) {
    if (await hasTorch(c.python)) return c;
    tried.push(c.python);
  }
  fail(
    'usage',
    tried.length
      ? `no python on PATH imports torch (tried ${tried.slice(0, 4).join(', ')}${tried.length > 4 ? ', ...' : ''}); name one with --python /path/to/venv/bin/python`
      : 'no python on PATH; name one with --python /path/to/venv/bin/python',
  );
}
