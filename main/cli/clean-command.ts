import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fail } from '../errors.ts';
import { findTempFiles, isStale, parseDuration, removeTempEntry, STALE_AFTER_MS, type TempEntry } from '../io/temp-files.ts';
import { formatBytes, plural } from './format-text.ts';
import type { CliIO } from './io.ts';

export const CLEAN_HELP = `ckpt clean <folder> [--older-than DURATION] [--dry-run] [--json]

Removes the hidden temporary files (.<name>.ckpt-tmp-<host>-<pid>-…) that killed conversions
left under <folder>. A temporary file counts as left over once it is stale: untouched for
--older-than (default 1h). A running conversion touches its files at least every 5 minutes,
so it never looks stale, on whatever node it runs. Files and checkpoints are never touched.
Also removes, whatever their age, the old outputs that --force replaced
(.<name>.ckpt-replaced-<host>-<pid>-…) where their removal in the background was cut short.

options
  --older-than D   stale after D (e.g. 30m, 2h, 0); 0 removes every temporary file: only
                   when no conversion writes under <folder> now
  --dry-run        list what would be removed
  --json           one JSON object: removed and kept files`;

const describe = (e: TempEntry, root: string): string => {
  const who = e.host ? `${e.host}, pid ${e.pid}` : `pid ${e.pid}`;
  if (e.replaced) return `${path.relative(root, e.path)} (${formatBytes(e.bytes)}, the old ${e.output} that a run by ${who} replaced)`;
  const age = Math.round((Date.now() - e.modifiedMs) / 60_000);
  return `${path.relative(root, e.path)} (${formatBytes(e.bytes)}, for ${e.output}, by ${who}, last written ${age} min ago)`;
};

export async function runClean(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'older-than': { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(CLEAN_HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1) fail('usage', 'clean takes one folder: ckpt clean <folder>');
  const root = positionals[0]!;
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch {
    fail('io', `${root}: no such folder`, root);
  }
  if (!st.isDirectory()) fail('usage', `${root} is not a folder; ckpt clean takes the folder a conversion wrote into`, root);
  const olderThan = values['older-than'] === undefined ? STALE_AFTER_MS : parseDuration(values['older-than']);
  if (olderThan === null) fail('usage', `--older-than takes a duration such as 30m, 2h or 0, not '${values['older-than']}'`);
  const found = findTempFiles(root);
  const stale = found.filter((e) => isStale(e, olderThan));
  const kept = found.filter((e) => !stale.includes(e));
  const removed = values['dry-run'] ? stale : stale.filter(removeTempEntry);
  const failed = stale.filter((e) => !removed.includes(e));
  if (values.json) {
    io.stdout(
      JSON.stringify({
        removed: removed.map((e) => e.path),
        kept: kept.map((e) => e.path),
        failed: failed.map((e) => e.path),
        dryRun: !!values['dry-run'],
        bytes: removed.reduce((a, e) => a + e.bytes, 0),
      }) + '\n',
    );
    return failed.length ? 1 : 0;
  }
  const verb = values['dry-run'] ? 'would remove' : 'removed';
  for (const e of removed) io.stdout(`${verb} ${describe(e, root)}\n`);
  for (const e of failed) io.stderr(`ckpt: could not remove ${e.path}\n`);
  for (const e of kept) io.stdout(`kept ${describe(e, root)}: not stale yet, a conversion may still be writing it (--older-than 0 removes it anyway)\n`);
  const summary = `${plural(removed.length, 'temporary file')} ${values['dry-run'] ? 'would be removed' : 'removed'}`;
  io.stdout(`${summary} (${formatBytes(removed.reduce((a, e) => a + e.bytes, 0))}), ${kept.length} kept\n`);
  return failed.length ? 1 : 0;
}
