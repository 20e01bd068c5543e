import * as fs from 'node:fs';
import * as path from 'node:path';
import { looksLikeSafetensors } from '../formats/safetensors/safetensors.ts';
import { FileReader } from '../io/random-access.ts';
import { looksLikeLegacy, looksLikeTar } from '../formats/torch/torch-legacy.ts';
import { isTorchArchive } from '../formats/torch/torch-zip.ts';
import { ZipArchive } from '../formats/zip/zip.ts';
import { TEMP_MARK } from '../io/temp-files.ts';
import { isDcpFolder } from '../formats/dcp/dcp.ts';
import { asCheckpointError } from '../errors.ts';
import { isDeepSpeedFolder } from '../formats/deepspeed/locate.ts';

/**
 * Finds checkpoints in a folder tree by their content, not their extension: torch zip, legacy,
 * tar and safetensors files. A file that starts like a zip but is cut short still counts, so its
 * failure is reported instead of it silently vanishing.
 */
export function sniffCheckpoint(file: string): boolean {
  try {
    return sniffReadable(file);
  } catch {
    return false;
  }
}

/** As `sniffCheckpoint`, but a file that cannot be opened throws (with its errno code). */
function sniffReadable(file: string): boolean {
  // opened first on its own so the errno survives: ENOENT (it vanished since it was listed) or
  // EACCES, EIO (it cannot be read)
  fs.closeSync(fs.openSync(file, 'r'));
  let r: FileReader | null = null;
  try {
    r = new FileReader(file);
    if (r.size < 8) return false;
    const head = r.read(0, 4);
    if (head[0] === 0x50 && head[1] === 0x4b) {
      const end = ZipArchive.findEnd(r);
      if (end === null) return true; // a truncated torch zip is still a checkpoint that failed
      try {
        return isTorchArchive(ZipArchive.open(r, end));
      } catch {
        return true;
      }
    }
    return looksLikeLegacy(r) || looksLikeTar(r) || looksLikeSafetensors(r);
  } catch {
    return false;
  } finally {
    r?.close();
  }
}

/**
 * Relative paths (with `/`) of the checkpoints under `root`, sorted; skips hidden entries and
 * `exclude`. A file that vanishes while the folder is read is passed over (there is nothing left
 * to convert); files and folders that cannot be read are returned in `unreadable` with the reason,
 * for the batch to report as failed.
 */
export function findCheckpoints(
  root: string,
  exclude: string | null = null,
): { files: string[]; ignored: number; unreadable: { file: string; reason: string }[] } {
  const files: string[] = [];
  const unreadable: { file: string; reason: string }[] = [];
  let ignored = 0;
  const skip = exclude ? path.resolve(exclude) : null;
  const walk = (dir: string, rel: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      if (rel && (e as NodeJS.ErrnoException).code !== 'ENOENT')
        unreadable.push({ file: rel, reason: `${dir}: the folder cannot be read (${asCheckpointError(e, dir).message.replace(`${dir}: `, '')})` });
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.') || e.name.includes(TEMP_MARK)) continue;
      const full = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (skip && path.resolve(full) === skip) continue;
        // a distributed-checkpoint folder (.metadata + .distcp files) or a DeepSpeed folder is one checkpoint
        if (isDcpFolder(full) || isDeepSpeedFolder(full)) files.push(r);
        else walk(full, r);
      } else if (e.isFile()) {
        let isCheckpoint: boolean;
        try {
          isCheckpoint = sniffReadable(full);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unreadable.push({ file: r, reason: asCheckpointError(err, full).message });
          continue;
        }
        if (isCheckpoint) files.push(r);
        else ignored++;
      }
    }
  };
  walk(root, '');
  return { files, ignored, unreadable };
}

/** `ckpt.rank3.pt`, `model_rank_3.pth`, `shard-3.bin`, `weights_3.pt`: the rank and the name without it. */
const RANK_NAME = /^(.*?)([._-]?(?:rank|shard)[_-]?|_)(\d+)(\.[^.]+)?$/i;

export interface FileGroup {
  /** relative paths, ordered by rank for families */
  files: string[];
  /** a per-rank family: same folder, same name but for the rank number, ranks 0..n-1 */
  family: boolean;
  /** for families: the file name with the rank token removed */
  mergedName?: string;
}

/** Groups per-rank families (ranks 0..n-1 in one folder) and leaves other files single. */
export function groupFamilies(files: string[]): FileGroup[] {
  const families = new Map<string, { rank: number; file: string; merged: string }[]>();
  const singles: string[] = [];
  for (const f of files) {
    const dir = path.posix.dirname(f);
    const m = RANK_NAME.exec(path.posix.basename(f));
    if (!m) {
      singles.push(f);
      continue;
    }
    const merged = `${m[1] || 'merged'}${m[4] ?? ''}`;
    const key = `${dir}\0${m[1]}\0${m[2]!.toLowerCase()}\0${m[4] ?? ''}`;
    const list = families.get(key) ?? [];
    list.push({ rank: Number(m[3]), file: f, merged: dir === '.' ? merged : `${dir}/${merged}` });
    families.set(key, list);
  }
  const groups: FileGroup[] = singles.map((f) => ({ files: [f], family: false }));
  for (const list of families.values()) {
    list.sort((a, b) => a.rank - b.rank);
    const contiguous = list.length >= 2 && list.every((x, i) => x.rank === i);
    if (contiguous) groups.push({ files: list.map((x) => x.file), family: true, mergedName: list[0]!.merged });
    else for (const x of list) groups.push({ files: [x.file], family: false });
  }
  return groups.sort((a, b) => a.files[0]!.localeCompare(b.files[0]!));
}
