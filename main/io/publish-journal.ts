/**
 * The marker that makes publishing a multi-file output recoverable. Before the first rename a
 * journal `.<name>.ckpt-publish-<pid>-<hex>.json` is written beside the staging folder, naming
 * every path the publish will touch; it is removed after the last step. A run that finds the
 * journal of a process that no longer exists finishes or rolls back that publish from what the
 * journal says and what is on disk, never from the shape of file names alone:
 *
 * - folder swap (`dest` → `old`, staging → `dest`, remove `old`): the rename of the staging
 *   folder is the commit point. Staging folder still there: put `old` back. Gone: remove `old`.
 * - file moves (each `dest` → its backup inside the staging folder, staged file → `dest`): the
 *   journal's state `committed` is the commit point. Before it, every move is undone in reverse
 *   (a destination is removed only when it is the staged file itself, by inode, or the staged file
 *   is gone from the staging folder that the journal names); after it, the backups are removed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { syncDir as syncFolder } from './atomic-file.ts';
import { parseTempName, pidNamespace, PUBLISH_MARK, STALE_AFTER_MS, TEMP_MARK, THIS_HOST } from './temp-files.ts';

export { PUBLISH_MARK };

export interface FileMove {
  staged: string;
  dest: string;
  /** where the file at `dest` is parked while the publish runs (inside the staging folder) */
  backup: string;
}

export interface PublishJournal {
  version: 1;
  pid: number;
  /** where `pid` means something: the writer's host name and PID namespace (absent in older journals) */
  host?: string;
  pidNamespace?: string | null;
  /** the staging folder, absolute */
  staging: string;
  state: 'swapping' | 'committed';
  folder?: { dest: string; old: string | null };
  files?: FileMove[];
}

/** The journal's path for a staging folder `.<name>.ckpt-tmp-<pid>-<hex>`. */
export function journalPathFor(stagingDir: string, tempMark: string): string {
  return path.join(path.dirname(stagingDir), path.basename(stagingDir).replace(tempMark, PUBLISH_MARK) + '.json');
}

/** Writes the journal whole or not at all (a `.part` file renamed over it), and makes it durable. */
export function writeJournal(file: string, journal: PublishJournal): void {
  const part = `${file}.part`;
  const fd = fs.openSync(part, 'w', 0o644);
  try {
    fs.writeSync(fd, JSON.stringify(journal));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(part, file);
  syncFolder(path.dirname(file));
}

export function removeJournal(file: string): void {
  fs.rmSync(file, { force: true });
  syncFolder(path.dirname(file));
}

/** What recovery did, for tests and messages. */
export interface Recovery {
  journal: string;
  action: 'rolled-back' | 'finished' | 'left';
}

/**
 * Finishes or rolls back every publish in `dir` whose process is gone. Journals of live
 * processes are left alone. Returns what was done, one entry per journal found.
 */
export function recoverInterruptedPublishes(dir: string): Recovery[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Recovery[] = [];
  for (const n of names) {
    const m = new RegExp(`${escapeRe(PUBLISH_MARK)}.*\\.json(\\.part)?$`).exec(n);
    if (!m) continue;
    const file = path.join(dir, n);
    if (m[1]) {
      // killed while writing the journal: nothing was renamed yet
      if (writerGone(file, nameWriter(n))) fs.rmSync(file, { force: true });
      continue;
    }
    let journal: PublishJournal;
    try {
      journal = JSON.parse(fs.readFileSync(file, 'utf8')) as PublishJournal;
    } catch {
      out.push({ journal: file, action: 'left' }); // unreadable: touch nothing it might name
      continue;
    }
    if (journal.version !== 1 || path.dirname(journal.staging) !== path.resolve(dir)) {
      out.push({ journal: file, action: 'left' });
      continue;
    }
    if (!writerGone(file, journal)) continue; // a live publish, here or on another node
    const action = journal.folder ? recoverFolder(journal, journal.folder) : recoverFiles(journal, journal.files ?? []);
    if (action !== 'left') removeJournal(file);
    out.push({ journal: file, action });
  }
  return out;
}

/** Staging folders a remaining journal names: their contents (parked originals) must stay. */
export function journaledStagingFolders(dir: string): Set<string> {
  const out = new Set<string>();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (!n.includes(PUBLISH_MARK) || !n.endsWith('.json')) continue;
    try {
      out.add(path.resolve((JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as PublishJournal).staging));
    } catch {
      /* unreadable: its staging folder is found by name below */
      out.add(path.join(dir, n.replace(PUBLISH_MARK, '.ckpt-tmp-').replace(/\.json$/, '')));
    }
  }
  return out;
}

function recoverFolder(j: PublishJournal, f: { dest: string; old: string | null }): Recovery['action'] {
  if (fs.existsSync(j.staging)) {
    // not committed: the new folder never took the destination's place
    if (f.old && fs.existsSync(f.old)) {
      if (fs.existsSync(f.dest)) return 'left'; // something else took the destination since; keep both
      fs.renameSync(f.old, f.dest);
    }
    fs.rmSync(j.staging, { recursive: true, force: true });
    syncFolder(path.dirname(j.staging));
    return 'rolled-back';
  }
  if (f.old) fs.rmSync(f.old, { recursive: true, force: true });
  return 'finished';
}

function recoverFiles(j: PublishJournal, moves: FileMove[]): Recovery['action'] {
  if (!fs.existsSync(j.staging)) return 'finished'; // nothing of this run is left to undo or remove
  if (j.state === 'committed') {
    fs.rmSync(j.staging, { recursive: true, force: true });
    return 'finished';
  }
  if (!undoMoves(moves)) return 'left'; // an original could not go back: keep it where it is
  fs.rmSync(j.staging, { recursive: true, force: true });
  return 'rolled-back';
}

/**
 * Undoes file moves in reverse: each original goes back from its backup, and a destination is
 * removed only when it is provably this publish's file. True when no original is left parked.
 */
export function undoMoves(moves: FileMove[]): boolean {
  for (const m of [...moves].reverse()) {
    try {
      const staged = statOrNull(m.staged);
      const dest = statOrNull(m.dest);
      if (staged) {
        // not moved, or hard-linked and not yet unlinked: the destination is ours only if it is that file
        if (dest && dest.ino === staged.ino && dest.dev === staged.dev) fs.unlinkSync(m.dest);
      } else if (dest) {
        // moved: the destination is the new file; the original replaces it, or it goes
        if (fs.existsSync(m.backup)) fs.renameSync(m.backup, m.dest);
        else fs.unlinkSync(m.dest);
        continue;
      }
      if (fs.existsSync(m.backup) && !fs.existsSync(m.dest)) fs.renameSync(m.backup, m.dest);
    } catch {
      /* reported below by the backup still being there */
    }
  }
  for (const dir of new Set(moves.map((m) => path.dirname(m.dest)))) syncFolder(dir);
  return !moves.some((m) => fs.existsSync(m.backup));
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/** The writer a journal's name gives (host and PID, from the staging folder's name it copies). */
function nameWriter(name: string): Pick<PublishJournal, 'host' | 'pid'> {
  const parsed = parseTempName(name.replace(PUBLISH_MARK, TEMP_MARK).replace(/\.json(\.part)?$/, ''));
  return { pid: parsed?.pid ?? 0, ...(parsed?.host ? { host: parsed.host } : {}) };
}

/**
 * Whether the process that wrote a journal is gone. Its PID is asked only where that PID means
 * something: the same host name and PID namespace as this process. A journal from another node or
 * container is taken as abandoned only once it has been untouched for STALE_AFTER_MS (publishing
 * is a few renames, so a live one is far younger), never by guessing from a PID.
 */
function writerGone(file: string, writer: Pick<PublishJournal, 'host' | 'pid' | 'pidNamespace'>): boolean {
  const sameSpace = writer.host === undefined || (writer.host === THIS_HOST && (writer.pidNamespace === undefined || writer.pidNamespace === pidNamespace()));
  if (sameSpace && writer.pid > 0) return !processAlive(writer.pid);
  try {
    return Date.now() - fs.statSync(file).mtimeMs >= STALE_AFTER_MS;
  } catch {
    return false;
  }
}

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
