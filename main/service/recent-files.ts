/**
 * Recently opened files, newest first, kept in `recent.json` in the user's config folder. A
 * missing or unreadable file is an empty list; files that no longer exist are left out on read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const MAX_RECENT = 12;

export class RecentFiles {
  private readonly file: string;

  constructor(configDir: string) {
    this.file = path.join(configDir, 'recent.json');
  }

  list(): string[] {
    let saved: unknown;
    try {
      saved = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch {
      return [];
    }
    const recent = (saved as { recent?: unknown })?.recent;
    if (!Array.isArray(recent)) return [];
    return recent.filter((f): f is string => typeof f === 'string' && path.isAbsolute(f) && fs.existsSync(f)).slice(0, MAX_RECENT);
  }

  /** Moves `file` to the front; returns the new list. */
  add(file: string): string[] {
    const recent = [file, ...this.list().filter((f) => f !== file)].slice(0, MAX_RECENT);
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ version: 1, recent }, null, 1) + '\n');
    fs.renameSync(tmp, this.file);
    return recent;
  }
}
