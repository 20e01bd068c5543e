/**
 * A re-shard's torch outputs (one file, rank files, a DCP folder's bytes items) follow the rule a
 * conversion's outputs follow (main/convert/code-free-output.ts): only torch 2.13's allowlisted
 * globals, numpy scalars as Python numbers, `argparse.Namespace` as a dict, other classes only with
 * `--keep-objects`, and nothing from a dangerous source unless only its tensors are taken
 * (safetensors or shard targets, which hold tensors alone).
 */
import type { CodeFreeReport } from '../../shared/convert.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import { makeCodeFree } from '../convert/code-free-output.ts';
import { scanFile } from '../checkpoint/scan/scan-file.ts';
import type { PrescannedPickles } from '../formats/torch/torch-zip.ts';

const TENSORS_ONLY = 're-shard to safetensors (--format safetensors) or to --to shards';

/**
 * The first dangerous global of any of the input files (as `ckpt scan` finds it), or null.
 * `scans`: the pickles the source's readers walked already, by file (`ReshardSource.pickleScans`).
 */
function dangerousInput(files: string[], scans: ReadonlyMap<string, PrescannedPickles>): string | null {
  for (const file of files) {
    if (file.endsWith('.json')) continue; // a shard index: no pickle
    const r = scanFile(file, scans.get(file));
    if (r.verdict !== 'dangerous') continue;
    const g = r.globals.find((x) => x.class === 'dangerous');
    return g?.example ?? g?.name ?? 'see ckpt scan';
  }
  return null;
}

/** The tree a torch output of a re-shard writes, or the one-line reason it cannot be written. */
export function codeFreeOutput(
  tree: PyValue,
  inputFiles: string[],
  scans: ReadonlyMap<string, PrescannedPickles>,
  keepObjects: boolean,
): { tree: PyValue; report: Omit<CodeFreeReport, 'leftBehind'> } | { refusal: string } {
  const danger = dangerousInput(inputFiles, scans);
  if (danger) return { refusal: `the source is dangerous (${danger}); nothing was written; ${TENSORS_ONLY} to take only its tensors` };
  const r = makeCodeFree(tree, keepObjects, TENSORS_ONLY);
  if (r.blocked) return { refusal: r.blocked };
  return { tree: r.tree, report: { converted: r.converted, kept: r.kept } };
}
