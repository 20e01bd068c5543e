import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { SecurityReport } from '../../shared/inspect.ts';
import { securityOfPath } from '../checkpoint/security.ts';
import { asCheckpointError, fail } from '../errors.ts';
import { makeStyle, type Style } from './format-text.ts';
import type { CliIO } from './io.ts';

export const SCAN_HELP = `ckpt scan <file|folder>... [--json]

Says what unpickling each file would do, without running any of it: every pickle torch.load
reads (and those it would not reach but pickle.load or a hub's loader would), each global with
the call it would make and its byte offset, and whether torch.load(f, weights_only=True) loads
the file (checked against torch 2.13's and 1.13's allowlists, name by name).

  safe           torch.load(weights_only=True) loads it, or it holds no pickle
  benign         runs nothing foreign, but torch's weights-only loader refuses it
  unknown-class  constructs classes that must be imported (a whole pickled model)
  dangerous      calls functions, reaches attributes, or names a known gadget

  --json   one JSON object per file and line: file, verdict, holdsFor, globals, weightsOnly, notes

Folders are scanned recursively. Exit code 0: every file safe or benign; 1: any file
unknown-class or dangerous; 2: a usage error or an unreadable path.`;

/** One line of `--json`: a file's verdict, or why it could not be read. */
export type ScanLine = { file: string } & (Pick<SecurityReport, 'verdict' | 'holdsFor' | 'globals' | 'weightsOnly' | 'notes'> | { error: string });

export async function runScan(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    io.stdout(SCAN_HELP + '\n');
    return 0;
  }
  if (positionals.length === 0) fail('usage', 'scan takes at least one file or folder: ckpt scan <file|folder> [--json]');
  const files: string[] = [];
  for (const p of positionals) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (e) {
      throw asCheckpointError(e, p);
    }
    if (st.isDirectory() && !isDcpFolder(p)) files.push(...walk(p));
    else files.push(p);
  }
  const style = makeStyle(io.color);
  let flagged = false;
  let unreadable = false;
  const counts: Record<string, number> = {};
  files.forEach((file, i) => {
    if (files.length > 1) io.stderr(`${io.isTTY ? '\r\x1b[2K' : ''}scanning ${i + 1}/${files.length} ${file}${io.isTTY ? '' : '\n'}`);
    let line: ScanLine;
    try {
      const r = securityOfPath(file);
      line = {
        file,
        verdict: r.verdict,
        globals: r.globals,
        notes: r.notes ?? [],
        ...(r.holdsFor !== undefined ? { holdsFor: r.holdsFor } : {}),
        ...(r.weightsOnly ? { weightsOnly: r.weightsOnly } : {}),
      };
      flagged ||= r.verdict === 'dangerous' || r.verdict === 'unknown-class';
      counts[r.verdict] = (counts[r.verdict] ?? 0) + 1;
    } catch (e) {
      line = { file, error: asCheckpointError(e, file).message };
      unreadable = true;
      counts['unreadable'] = (counts['unreadable'] ?? 0) + 1;
    }
    if (io.isTTY && files.length > 1) io.stderr('\r\x1b[2K');
    io.stdout(values.json ? JSON.stringify(line) + '\n' : renderScan(line, style));
  });
  if (files.length > 1)
    io.stderr(
      `${files.length} files: ${Object.entries(counts)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')}\n`,
    );
  return unreadable ? 2 : flagged ? 1 : 0;
}

/** Every regular file under a folder, sorted; symlinks are not followed; a DCP folder is one entry. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (isDcpFolder(p)) out.push(p);
      else out.push(...walk(p));
    } else if (e.isFile()) out.push(p);
  }
  return out;
}

function isDcpFolder(p: string): boolean {
  return fs.existsSync(path.join(p, '.metadata')) && fs.readdirSync(p).some((f) => f.endsWith('.distcp'));
}

export function renderScan(line: ScanLine, s: Style): string {
  if ('error' in line) return `${s.red('unreadable')}  ${line.file}: ${line.error}\n`;
  const tone = line.verdict === 'dangerous' ? s.red : line.verdict === 'unknown-class' ? s.yellow : s.green;
  const out = [`${tone(line.verdict.padEnd(13))}  ${line.file}`];
  const wo = line.weightsOnly;
  if (wo) out.push(s.dim(`               torch.load(weights_only=True): ${wo.loads ? 'loads' : `refuses (${wo.refusal})`}`));
  for (const g of line.globals.filter((x) => x.class !== 'safe')) {
    const at = g.offset !== undefined ? s.dim(` @${g.record ?? ''}+${g.offset}`) : '';
    out.push(`  ${(g.class === 'dangerous' ? s.red : g.class === 'unknown-class' ? s.yellow : s.dim)(g.class.padEnd(13))} ${g.name}${at}: ${g.reason}`);
    if (g.example) out.push(`                ${s.dim(g.example)}`);
  }
  for (const n of line.notes ?? []) out.push(s.dim(`  note: ${n}`));
  return out.join('\n') + '\n';
}
