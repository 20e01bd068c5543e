import * as fs from 'node:fs';
import { replacedPathFor } from './temp-files.ts';
import { pauseForTest } from './test-pause.ts';

/**
 * Replacing an output (`--force`) without making the user wait while the old one is freed.
 *
 * `rename(tmp, dest)` over an existing file drops the old file's last link, and the kernel frees
 * its blocks inside that rename: for a 2 GiB output on ext4 mounted with `discard`, 0.3–0.5 s of
 * I/O wait (strace -T on the rename), a third of a fresh conversion. So a big old output first gets
 * a second, hidden link beside it (`.<name>.ckpt-replaced-…`, temp-files.ts); the rename then only
 * swaps names, and the caller frees the old file in the background (`freeInBackground`) once the
 * new one is published.
 *
 * Nothing is lost at any step: until the rename, the destination is the old output, untouched
 * (the extra link changes only its link count); after it, the destination is the new output,
 * written, fsynced and verified by the caller before. A second link that is left behind (killed
 * before the rename, or the background removal killed) is removable at any time and is removed by
 * the next run into the folder or by `ckpt clean`, recognised by its name, never by a PID.
 */

/**
 * Below this size a plain rename replaces the output: freeing the old file then costs about as much
 * as starting the background `rm` does (here 16 ms for 64 MiB against 9 ms for the spawn).
 */
export const BACKGROUND_FREE_FROM_BYTES = 64 << 20;

export interface ReplaceOptions {
  /** fs.linkSync; injected by tests to act as a file system without hard links */
  link?: (existing: string, newPath: string) => void;
  /** old outputs smaller than this are replaced by a plain rename */
  backgroundFreeFrom?: number;
}

/**
 * Renames `tmp` over `dest`. Returns the hidden second link to the replaced output, which the
 * caller frees (`freeInBackground`) once the new output is durable, or null where the old output
 * was freed by the rename itself: no old output, a small one, one that has other links anyway, or
 * a file system that refuses hard links (some FUSE and SMB mounts: EPERM, ENOTSUP).
 */
export function replaceFile(tmp: string, dest: string, opts: ReplaceOptions = {}): string | null {
  const second = secondLinkTo(dest, opts);
  pauseForTest('replace:second-link');
  try {
    fs.renameSync(tmp, dest);
  } catch (e) {
    if (second) fs.rmSync(second, { force: true }); // the destination still links the old output
    throw e;
  }
  return second;
}

function secondLinkTo(dest: string, opts: ReplaceOptions): string | null {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dest);
  } catch {
    return null; // nothing to replace (or nothing readable: the rename reports it)
  }
  if (!st.isFile() || st.nlink > 1 || st.size < (opts.backgroundFreeFrom ?? backgroundFreeFrom())) return null;
  const second = replacedPathFor(dest);
  try {
    (opts.link ?? fs.linkSync)(dest, second);
    return second;
  } catch {
    // No hard links here (EPERM, ENOTSUP), or no room for another name: the link only saves time,
    // so the rename frees the old output itself, as before.
    return null;
  }
}

/** `CKPT_TEST_BACKGROUND_FREE_FROM` (bytes) lowers the bound for the CLI tests, whose outputs are small. */
function backgroundFreeFrom(): number {
  const test = Number(process.env['CKPT_TEST_BACKGROUND_FREE_FROM']);
  return process.env['CKPT_TEST_BACKGROUND_FREE_FROM'] && Number.isFinite(test) ? test : BACKGROUND_FREE_FROM_BYTES;
}
