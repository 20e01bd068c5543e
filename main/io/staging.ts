import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDir, TEMP_MARK } from './atomic-file.ts';
import { asCheckpointError, fail } from '../errors.ts';

/**
 * A hidden folder beside the destination where a multi-file output (rank files, a shard set, a
 * DCP folder) is written and verified completely before any of it is published. Publishing is a
 * rename of the folder (or of each file); a failure rolls back, so the destination either gets
 * the whole verified output or keeps what it had.
 */
export class Staging {
  private constructor(readonly dir: string, private readonly dest: string) {}

  /** Creates `.<name>.ckpt-tmp-<pid>-<hex>` beside `dest`, removing ones left by killed runs. */
  static create(dest: string): Staging {
    const parent = path.dirname(path.resolve(dest));
    const base = path.basename(dest);
    try {
      fs.mkdirSync(parent, { recursive: true });
      for (const n of fs.readdirSync(parent)) {
        const m = new RegExp(`^\\.${escape(base)}${escape(TEMP_MARK)}(\\d+)-[0-9a-f]+$`).exec(n);
        if (m && !alive(Number(m[1]))) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
      }
      const dir = path.join(parent, `.${base}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
      fs.mkdirSync(dir);
      return new Staging(dir, dest);
    } catch (e) {
      throw asCheckpointError(e, dest);
    }
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  /** Renames the staged folder to the destination, replacing a folder there only with `overwrite`. */
  publishFolder(overwrite: boolean): void {
    const dest = path.resolve(this.dest);
    const parent = path.dirname(dest);
    try {
      syncDir(this.dir);
      let old: string | null = null;
      if (fs.existsSync(dest)) {
        if (fs.statSync(dest).isDirectory() && fs.readdirSync(dest).length === 0) fs.rmdirSync(dest);
        else if (!overwrite) fail('exists', `${this.dest} already exists; pass --force to replace it`, this.dest);
        else {
          old = path.join(parent, `.${path.basename(dest)}.ckpt-old-${process.pid}-${randomBytes(4).toString('hex')}`);
          fs.renameSync(dest, old);
        }
      }
      try {
        fs.renameSync(this.dir, dest);
      } catch (e) {
        if (old) fs.renameSync(old, dest);
        throw e;
      }
      if (old) fs.rmSync(old, { recursive: true, force: true });
      syncDir(parent);
    } catch (e) {
      this.discard();
      throw asCheckpointError(e, this.dest);
    }
  }

  /**
   * Moves staged files to their destinations. Without `overwrite` a destination that appeared
   * meanwhile stops it; with it, replaced files are kept aside until every move succeeded.
   */
  publishFiles(moves: { name: string; dest: string }[], overwrite: boolean): void {
    const done: { dest: string; backup: string | null }[] = [];
    let keep = false;
    try {
      for (const m of moves) {
        const staged = this.path(m.name);
        let backup: string | null = null;
        if (fs.existsSync(m.dest)) {
          if (!overwrite) fail('exists', `${m.dest} already exists; pass --force to overwrite it`, m.dest);
          backup = this.path(`${m.name}.replaced`);
          fs.renameSync(m.dest, backup);
        }
        done.push({ dest: m.dest, backup });
        if (overwrite) fs.renameSync(staged, m.dest);
        else {
          fs.linkSync(staged, m.dest); // never replaces a file that appeared meanwhile
          fs.unlinkSync(staged);
        }
      }
      for (const dir of new Set(moves.map((m) => path.dirname(path.resolve(m.dest))))) syncDir(dir);
    } catch (e) {
      for (const d of done.reverse()) {
        try {
          fs.rmSync(d.dest, { force: true });
          if (d.backup) fs.renameSync(d.backup, d.dest);
        } catch {
          keep = true; // the replaced file stays in the staging folder
        }
      }
      throw asCheckpointError(e);
    } finally {
      if (!keep) this.discard();
    }
  }

  discard(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
