// The Verify view's "Python model" source: what it remembers per workspace (the folder of the open
// checkpoint) and how its fields become VerifyOptions.
import type { VerifyOptions } from '../../../shared/verify.ts';
import { loadStored, store } from '../lib/stored.ts';

export interface PythonChoice {
  python: string;
  modelClass: string;
  modelArgs: string;
}

const KEY = 'ckpt.verify.python:';

/** The workspace a checkpoint belongs to: its folder, or the folder above per-rank files in `ddp/`. */
export function workspaceOf(dir: string, parent: string): string {
  return /[\\/](ddp|ranks?)$/.test(dir) ? parent : dir;
}

export function recall(workspace: string): PythonChoice | null {
  const v = loadStored(KEY + workspace) as Partial<PythonChoice> | null;
  return v && typeof v.modelClass === 'string' && typeof v.python === 'string' && typeof v.modelArgs === 'string' ? (v as PythonChoice) : null;
}

export function remember(workspace: string, choice: PythonChoice): void {
  store(KEY + workspace, choice);
}

/** The Python-model part of the options, or the problems that stop them. */
export function pythonOptions(c: PythonChoice, problems: string[]): Pick<VerifyOptions, 'modelClass' | 'modelArgs' | 'python'> | null {
  const modelClass = c.modelClass.trim();
  const python = c.python.trim();
  if (!modelClass) problems.push('Name the model class: path/to/model.py:ClassName or package.module:ClassName.');
  else if (!/^.+:[A-Za-z_]\w*$/.test(modelClass) && !/\.py$/i.test(modelClass))
    problems.push('The model class is path/to/model.py:ClassName, package.module:ClassName, or a model.py that defines one nn.Module.');
  let modelArgs: Record<string, unknown> = {};
  if (c.modelArgs.trim()) {
    try {
      const v: unknown = JSON.parse(c.modelArgs);
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      modelArgs = v as Record<string, unknown>;
    } catch {
      problems.push('The constructor arguments are a JSON object, e.g. {"width": 64}.');
    }
  }
  return problems.length ? null : { modelClass, modelArgs, python: python || null };
}
