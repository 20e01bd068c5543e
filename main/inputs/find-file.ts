/**
 * Where a file dropped on a web page lives: a browser tells the page only its name, size and
 * modified time, so the folders the user works in (the recent files' folders) are searched for a
 * file with all three. Bounded: a few levels deep, a fixed number of entries, hidden folders and
 * node_modules skipped, so a drop never walks a whole disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FoundFiles } from '../../shared/api.ts';

export interface DroppedFile {
  name: string;
  bytes: number;
  /** `File.lastModified`: milliseconds since the epoch */
  modifiedMs: number;
}

export const FIND_DEPTH = 3;
export const FIND_MAX_ENTRIES = 20_000;
const MAX_MATCHES = 10;
/** file systems keep whole seconds (or 2 s on FAT); the browser reports milliseconds */
const MTIME_SLACK_MS = 2000;

export function findDroppedFile(file: DroppedFile, folders: readonly string[]): FoundFiles {
  const matches = new Set<string>();
  const seen = new Set<string>();
  let searched = 0;
  let queue: string[] = [...new Set(folders.map((f) => path.resolve(f)))];
  for (let depth = 0; depth <= FIND_DEPTH && queue.length; depth++) {
    const next: string[] = [];
    for (const dir of queue) {
      if (seen.has(dir)) continue;
      seen.add(dir);
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        continue; // gone, or not readable: the other folders still count
      }
      for (const e of entries) {
        if (++searched > FIND_MAX_ENTRIES) return { matches: [...matches], searched: FIND_MAX_ENTRIES, stoppedEarly: true };
        const full = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (!e.name.startsWith('.') && e.name !== 'node_modules') next.push(full);
        } else if (e.isFile() && e.name === file.name) {
          try {
            const st = fs.statSync(full);
            if (st.size === file.bytes && Math.abs(st.mtimeMs - file.modifiedMs) < MTIME_SLACK_MS) matches.add(full);
          } catch {
            /* removed meanwhile */
          }
          if (matches.size >= MAX_MATCHES) return { matches: [...matches], searched, stoppedEarly: true };
        }
      }
    }
    queue = next;
  }
  return { matches: [...matches], searched, stoppedEarly: false };
}
