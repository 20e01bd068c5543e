/**
 * A folder's entries for the UI's file browser: folders first, then files, by name; files whose
 * content looks like a checkpoint are marked (sniffed from their first bytes, not parsed).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DirEntry, DirListing } from '../../shared/api.ts';
import { sniffCheckpoint } from './discover.ts';
import { asCheckpointError, fail } from '../errors.ts';

/** Files sniffed per listing; a huge folder lists the rest without the mark. */
export const SNIFF_LIMIT = 300;

export function listDirectory(dir: string): DirListing {
  let names: fs.Dirent[];
  try {
    if (!fs.statSync(dir).isDirectory()) fail('usage', `${dir} is a file, not a folder`, dir);
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw asCheckpointError(e, dir);
  }
  const entries: DirEntry[] = [];
  for (const d of names) {
    const full = path.join(dir, d.name);
    let kind: DirEntry['kind'];
    let bytes = 0;
    try {
      // Links are shown as what they point to; broken ones are left out.
      const st = d.isSymbolicLink() ? fs.statSync(full) : d.isDirectory() ? null : fs.lstatSync(full);
      if (d.isDirectory() || st?.isDirectory()) kind = 'dir';
      else if (st?.isFile()) {
        kind = 'file';
        bytes = st.size;
      } else continue;
    } catch {
      continue;
    }
    entries.push({ name: d.name, path: full, kind, bytes });
  }
  entries.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === 'dir' ? -1 : 1));
  let sniffed = 0;
  for (const e of entries) {
    if (e.kind !== 'file' || sniffed >= SNIFF_LIMIT) continue;
    sniffed++;
    e.checkpoint = sniffCheckpoint(e.path);
  }
  const parent = path.dirname(dir);
  return { dir, parent: parent === dir ? null : parent, entries };
}
