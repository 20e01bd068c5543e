/**
 * Finds the files of a DeepSpeed checkpoint from what the user named, as
 * deepspeed/utils/zero_to_fp32.py `get_fp32_state_dict_from_zero_checkpoint` does:
 * - the folder holding `latest` (the tag is its text, stripped) and the tag folders;
 * - a tag folder itself (`global_step100/`, Lightning's `checkpoint/`);
 * - either of those with an explicit tag (`--tag T`).
 * PyTorch Lightning's DeepSpeed checkpoints are such folders named `*.ckpt/` (tag `checkpoint`).
 * Model-state and optimizer-state files are globbed (`*_model_states.pt`, `*_optim_states.pt`)
 * and sorted naturally (`natural_keys`), so rank 10 comes after rank 9.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../../errors.ts';

export interface DeepSpeedFiles {
  /** the folder the user named */
  input: string;
  /** the folder holding the `*_states.pt` files */
  tagDir: string;
  tag: string;
  /** where the tag came from */
  tagFrom: 'latest' | 'tag-folder' | 'option';
  modelFiles: string[];
  optimFiles: string[];
  /** a PyTorch Lightning DeepSpeed checkpoint (`*.ckpt/` folder) */
  lightning: boolean;
}

const MODEL_STATES = /_model_states\.pt$/;
const OPTIM_STATES = /_optim_states\.pt$/;
const LATEST = 'latest';

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
function names(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** zero_to_fp32's `natural_keys`: digit runs compare as numbers. */
export function naturalCompare(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    if (i % 2 === 1) return Number(x) - Number(y) || (x < y ? -1 : 1);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

function holdsStates(dir: string): boolean {
  return names(dir).some((n) => OPTIM_STATES.test(n) || MODEL_STATES.test(n));
}

/** Tag folders beside `latest`: sub-folders holding `*_states.pt` files. */
function tagsIn(dir: string): string[] {
  return names(dir)
    .filter((n) => isDir(path.join(dir, n)) && holdsStates(path.join(dir, n)))
    .sort(naturalCompare);
}

/** A DeepSpeed checkpoint folder: `latest` with tag folders, or a tag folder itself. */
export function isDeepSpeedFolder(p: string): boolean {
  if (!isDir(p)) return false;
  const here = names(p);
  if (here.some((n) => OPTIM_STATES.test(n)) && here.some((n) => MODEL_STATES.test(n))) return true;
  return here.includes(LATEST) && isFile(path.join(p, LATEST)) && (tagsIn(p).length > 0 || here.includes('zero_to_fp32.py'));
}

function readLatest(dir: string): string {
  const file = path.join(dir, LATEST);
  const st = fs.statSync(file);
  if (st.size > 4096) fail('not-a-checkpoint', `${file}: ${st.size} bytes is not a DeepSpeed 'latest' file (it holds one tag name)`, file);
  const tag = fs.readFileSync(file, 'utf8').trim();
  if (!tag || /[\\/]|^\.\.?$/.test(tag)) fail('not-a-checkpoint', `${file}: ${JSON.stringify(tag)} is not a tag folder name`, file);
  return tag;
}

export function locateDeepSpeed(input: string, tag?: string): DeepSpeedFiles {
  if (!isDir(input)) fail('io', `${input}: no such folder`, input);
  // Lightning's `epoch=N-step=M.ckpt/` folder, or its `checkpoint/` tag folder
  const lightning =
    /\.ckpt$/.test(path.basename(path.resolve(input))) ||
    (!isFile(path.join(input, LATEST)) && /\.ckpt$/.test(path.basename(path.dirname(path.resolve(input)))));
  let tagDir: string;
  let tagFrom: DeepSpeedFiles['tagFrom'];
  const hasLatest = isFile(path.join(input, LATEST));
  if (tag !== undefined) {
    if (!tag || /[\\/]|^\.\.?$/.test(tag)) fail('usage', `--tag ${JSON.stringify(tag)}: give the name of a tag folder, e.g. global_step100`);
    tagDir = path.join(input, tag);
    tagFrom = 'option';
    if (!isDir(tagDir)) {
      const tags = tagsIn(input);
      fail('usage', `${input}: no tag folder ${tag}${tags.length ? `; its tags are ${tags.slice(0, 8).join(', ')}` : ''}`, input);
    }
  } else if (hasLatest && !(holdsStates(input) && !tagsIn(input).length)) {
    tag = readLatest(input);
    tagDir = path.join(input, tag);
    tagFrom = 'latest';
    if (!isDir(tagDir)) {
      const tags = tagsIn(input);
      fail(
        'not-a-checkpoint',
        `${input}: 'latest' names tag ${tag}, but there is no folder ${tag}${tags.length ? `; its tags are ${tags.slice(0, 8).join(', ')} (choose one with --tag)` : ''}`,
        input,
      );
    }
  } else if (holdsStates(input)) {
    tagDir = input;
    tag = path.basename(path.resolve(input));
    tagFrom = 'tag-folder';
  } else {
    const tags = tagsIn(input);
    fail(
      'usage',
      `${input}: no 'latest' file to name the tag${tags.length ? `; choose one of ${tags.slice(0, 8).join(', ')} with --tag` : ' and no tag folders'}`,
      input,
    );
  }
  const here = names(tagDir);
  const modelFiles = here
    .filter((n) => MODEL_STATES.test(n))
    .sort(naturalCompare)
    .map((n) => path.join(tagDir, n));
  const optimFiles = here
    .filter((n) => OPTIM_STATES.test(n))
    .sort(naturalCompare)
    .map((n) => path.join(tagDir, n));
  if (!modelFiles.length)
    fail(
      'not-a-checkpoint',
      `${tagDir}: no *_model_states.pt file; a DeepSpeed checkpoint has mp_rank_00_model_states.pt (ZeRO 1/2) or zero_pp_rank_R_mp_rank_00_model_states.pt (ZeRO 3)`,
      tagDir,
    );
  if (!optimFiles.length)
    fail(
      'not-a-checkpoint',
      `${tagDir}: no *_optim_states.pt files; the ZeRO fp32 weights live in them (was the checkpoint saved without its optimizer states?)`,
      tagDir,
    );
  return { input, tagDir, tag, tagFrom, modelFiles, optimFiles, lightning };
}

const RANK = /zero_pp_rank_(\d+)_mp_rank_(\d+)_(?:model|optim)_states\.pt$/;

/** The rank in a per-rank file name (`zero_pp_rank_3_mp_rank_00_optim_states.pt` → 3), else null. */
export function rankOf(file: string): number | null {
  const m = RANK.exec(path.basename(file));
  return m ? Number(m[1]) : null;
}

/**
 * The names missing from a run of per-rank files, from the name of one that is there:
 * `bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt` for rank 1.
 */
export function missingRankFiles(files: string[], worldSize: number): string[] {
  const present = new Set(files.map(rankOf));
  const sample = path.basename(files[0] ?? '');
  const missing: string[] = [];
  for (let r = 0; r < worldSize; r++) {
    if (!present.has(r)) missing.push(RANK.test(sample) ? sample.replace(/zero_pp_rank_\d+_/, `zero_pp_rank_${r}_`) : `rank ${r}`);
  }
  return missing;
}

/** `ckpt … DIR --tag T`: the tag folder T of the DeepSpeed checkpoint DIR (checked), or DIR itself without a tag. */
export function withTag(input: string, tag: string | undefined): string {
  if (tag === undefined) return input;
  if (!isDeepSpeedFolder(input))
    fail('usage', `--tag goes with a DeepSpeed checkpoint folder (one holding 'latest' and tag folders); ${input} is not one`, input);
  return locateDeepSpeed(input, tag).tagDir;
}
