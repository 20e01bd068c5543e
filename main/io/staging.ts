import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { refuseDanglingLink, syncDir, TEMP_MARK } from './atomic-file.ts';
import { asCheckpointError, fail } from '../errors.ts';
import { isStale, keepAlive, pidNamespace, removeTempEntry, tempFilesIn, tempPathFor, THIS_HOST } from './temp-files.ts';
import {
  journaledStagingFolders,
  journalPathFor,
  recoverInterruptedPublishes,
  removeJournal,
  undoMoves,
  writeJournal,
  type FileMove,
  type PublishJournal,
} from './publish-journal.ts';
import { pauseForTest } from './test-pause.ts';

/**
 * A hidden folder beside the destination where a multi-file output (rank files, a shard set, a
 * DCP folder) is written and verified completely before any of it is published. Publishing is a
 * rename of the folder (or of each file) under a journal (publish-journal.ts): a failure rolls
 * back at once, and a kill is finished or rolled back by the next run into the same folder, so
 * the destination ends up with the whole verified output or keeps what it had.
 */
export class Staging {
  private readonly stopHeartbeat: () => void;

  private constructor(
    readonly dir: string,
    private readonly dest: string,
  ) {
    this.stopHeartbeat = keepAlive(dir);
  }

  /**
   * Creates `.<name>.ckpt-tmp-<host>-<pid>-<start>-<hex>` beside `dest` (temp-files.ts). First the
   * publishes of killed runs in that folder are finished or rolled back by their journals; then
   * staging folders for the same destination that no journal names and that are stale (untouched
   * for an hour, whichever node wrote them) are removed. A PID never decides: on a shared file
   * system the folder may be another node's live work. While it exists the folder is touched every
   * HEARTBEAT_MS, so a long verification never makes it look stale.
   */
  static create(dest: string): Staging {
    const parent = path.dirname(path.resolve(dest));
    const base = path.basename(dest);
    try {
      fs.mkdirSync(parent, { recursive: true });
      recoverInterruptedPublishes(parent);
      const kept = journaledStagingFolders(parent);
      for (const e of tempFilesIn(parent)) if (e.folder && e.output === base && isStale(e) && !kept.has(e.path)) removeTempEntry(e);
      const dir = tempPathFor(dest);
      fs.mkdirSync(dir);
      return new Staging(dir, dest);
    } catch (e) {
      throw asCheckpointError(e, dest);
    }
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  /** Who is publishing, so that a run elsewhere can tell whether the PID means anything to it. */
  private get writer(): Pick<PublishJournal, 'version' | 'pid' | 'host' | 'pidNamespace'> {
    return { version: 1, pid: process.pid, host: THIS_HOST, pidNamespace: pidNamespace() };
  }

  private get journalPath(): string {
    return journalPathFor(this.dir, TEMP_MARK);
  }

  /** Renames the staged folder to the destination, replacing a folder there only with `overwrite`. */
  publishFolder(overwrite: boolean): void {
    const dest = path.resolve(this.dest);
    const parent = path.dirname(dest);
    let journal: string | null = null;
    try {
      syncDir(this.dir);
      let old: string | null = null;
      if (fs.existsSync(dest)) {
        if (fs.statSync(dest).isDirectory() && fs.readdirSync(dest).length === 0) fs.rmdirSync(dest);
        else if (!overwrite) fail('exists', `${this.dest} already exists; pass --force to replace it`, this.dest);
        else old = path.join(parent, `.${path.basename(dest)}.ckpt-old-${process.pid}-${randomBytes(4).toString('hex')}`);
      }
      if (old) {
        journal = this.journalPath;
        writeJournal(journal, { ...this.writer, staging: this.dir, state: 'swapping', folder: { dest, old } });
        pauseForTest('folder:journal-written');
        fs.renameSync(dest, old);
        syncDir(parent);
        pauseForTest('folder:old-parked');
      }
      try {
        fs.renameSync(this.dir, dest);
      } catch (e) {
        if (old) fs.renameSync(old, dest);
        throw e;
      }
      syncDir(parent);
      if (old) {
        pauseForTest('folder:new-in-place');
        fs.rmSync(old, { recursive: true, force: true });
        pauseForTest('folder:old-removed');
      }
      if (journal) removeJournal(journal);
      this.stopHeartbeat();
    } catch (e) {
      this.discard();
      if (journal && !fs.existsSync(this.dir)) removeJournal(journal);
      throw asCheckpointError(e, this.dest);
    }
  }

  /**
   * Moves staged files to their destinations. Without `overwrite` a destination that appeared
   * meanwhile stops it; with it, replaced files are parked in the staging folder until every move
   * succeeded. A failure puts every original back; one that cannot go back stays parked, and the
   * journal that names it stays too, so no later run removes it.
   */
  publishFiles(moves: { name: string; dest: string }[], overwrite: boolean): void {
    const planned: FileMove[] = moves.map((m) => ({ staged: this.path(m.name), dest: path.resolve(m.dest), backup: this.path(`${m.name}.replaced`) }));
    const journal = this.journalPath;
    const record = (state: PublishJournal['state']): void => writeJournal(journal, { ...this.writer, staging: this.dir, state, files: planned });
    let keep = false;
    try {
      for (const m of moves) {
        if (!overwrite && fs.existsSync(m.dest)) fail('exists', `${m.dest} already exists; pass --force to overwrite it`, m.dest);
        if (!overwrite) refuseDanglingLink(m.dest);
      }
      record('swapping');
      pauseForTest('files:journal-written');
      planned.forEach((m, i) => {
        if (fs.existsSync(m.dest)) {
          if (!overwrite) fail('exists', `${moves[i]!.dest} already exists; pass --force to overwrite it`, moves[i]!.dest);
          fs.renameSync(m.dest, m.backup);
        }
        if (overwrite) fs.renameSync(m.staged, m.dest);
        else {
          fs.linkSync(m.staged, m.dest); // never replaces a file that appeared meanwhile
          fs.unlinkSync(m.staged);
        }
        pauseForTest(`files:moved-${i}`);
      });
      for (const dir of new Set(planned.map((m) => path.dirname(m.dest)))) syncDir(dir);
      record('committed');
      pauseForTest('files:committed');
    } catch (e) {
      // an original that cannot go back stays parked in the staging folder, named by the journal
      keep = fs.existsSync(journal) && !undoMoves(planned);
      throw asCheckpointError(e);
    } finally {
      this.stopHeartbeat();
      if (!keep) {
        this.discard();
        removeJournal(journal);
      }
    }
  }

  discard(): void {
    this.stopHeartbeat();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
