import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SecurityGlobal, SecurityReport, WeightsOnlyVerdict } from '../../shared/inspect.ts';
import type { GlobalRef } from '../formats/values/format-reading.ts';
import { nameClass, worse } from '../formats/pickle/scan/findings.ts';
import { looksLikeClass } from '../formats/pickle/scan/name-classes.ts';
import { type PyValue } from '../formats/values/python-values.ts';
import { readShardIndex } from '../formats/safetensors/shard-index.ts';
import { scanFile } from './scan/scan-file.ts';
import { bySeverityThenName } from './scan/global-order.ts';
import type { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import { DEEPSPEED_CLASSES } from '../formats/deepspeed/known-classes.ts';
import { isDeepSpeedFolder, locateDeepSpeed } from '../formats/deepspeed/locate.ts';

/** Classes whose meaning is known (read as data, never imported): their unknown-class finding says what they are. */
const KNOWN_CLASSES: Readonly<Record<string, string>> = { ...DEEPSPEED_CLASSES };

function withKnownClasses(r: SecurityReport): SecurityReport {
  if (!r.globals.some((g) => g.class === 'unknown-class' && KNOWN_CLASSES[g.name])) return r;
  return { ...r, globals: r.globals.map((g) => (g.class === 'unknown-class' && KNOWN_CLASSES[g.name] ? { ...g, reason: KNOWN_CLASSES[g.name]! } : g)) };
}

/**
 * The Security card and `inspect`'s `security` field: the `ckpt scan` engine
 * (main/checkpoint/scan/) run over the file's own bytes, so both say the same thing. A folder
 * (distributed checkpoint) or a shard index is the union of its files.
 */
export function securityOfPath(source: string, prescanned?: Prescanned): SecurityReport {
  return withKnownClasses(securityOfPathAsScanned(source, prescanned));
}

/**
 * Pickles a reader walked already: of a single file (see `OpenFormatOptions.scans`), or of a
 * DeepSpeed folder's rank files, by file (`DeepSpeedReading.pickleScans`).
 */
export type Prescanned = PrescannedPickles | ReadonlyMap<string, PrescannedPickles>;

function securityOfPathAsScanned(source: string, prescanned: Prescanned | undefined): SecurityReport {
  const byFile = prescanned instanceof Map ? (prescanned as ReadonlyMap<string, PrescannedPickles>) : null;
  const st = fs.statSync(source);
  const ds = st.isDirectory() && isDeepSpeedFolder(source) ? locateDeepSpeed(source) : null;
  if (ds) {
    // a DeepSpeed folder: torch.load unpickles each model-states and optim-states file (DeepSpeed's engine.load_checkpoint)
    return mergeReports(
      [...ds.modelFiles, ...ds.optimFiles].map((f) => [path.relative(source, f), scanFile(f, byFile?.get(f))]),
      [`a DeepSpeed checkpoint (tag ${ds.tag}): each rank's *_states.pt is a torch.load pickle`],
    );
  }
  if (st.isDirectory()) {
    const files = fs
      .readdirSync(source)
      .filter((f) => f === '.metadata' || f.endsWith('.distcp'))
      .sort();
    return mergeReports(
      files.map((f) => [f, scanFile(path.join(source, f))]),
      ['a distributed checkpoint: torch.distributed.checkpoint reads .metadata with pickle.load (filesystem.py `read_metadata`)'],
    );
  }
  if (source.endsWith('.index.json')) {
    const index = readShardIndex(source);
    return mergeReports(
      index.shards.map((s) => [s, scanFile(path.join(index.dir, s))]),
      [`${index.shards.length} shards joined by their index`],
    );
  }
  return scanFile(source, byFile ? undefined : (prescanned as PrescannedPickles | undefined));
}

function mergeReports(parts: [string, SecurityReport][], notes: string[]): SecurityReport {
  const globals: SecurityGlobal[] = parts.flatMap(([f, r]) => r.globals.map((g) => ({ ...g, record: `${f}: ${g.record ?? ''}` })));
  const byTorch: Record<string, WeightsOnlyVerdict> = {};
  for (const [f, r] of parts) {
    for (const [t, v] of Object.entries(r.weightsOnly?.byTorch ?? {})) {
      if (!byTorch[t] || (byTorch[t].loads && !v.loads)) byTorch[t] = v.loads ? v : { loads: false, refusal: `${f}: ${v.refusal}` };
    }
  }
  const loads = parts.length > 0 && parts.every(([, r]) => r.weightsOnlyLoadable);
  const firstRefusal = parts.find(([, r]) => !r.weightsOnlyLoadable);
  return {
    verdict: parts.reduce((w, [, r]) => worse(w, r.verdict), 'safe' as SecurityReport['verdict']),
    globals: globals.sort(bySeverityThenName),
    weightsOnlyLoadable: loads,
    weightsOnly: {
      loads,
      ...(firstRefusal ? { refusal: `${firstRefusal[0]}: ${firstRefusal[1].weightsOnly?.refusal ?? 'refused'}` } : {}),
      unsupported: [...new Set(parts.flatMap(([, r]) => r.weightsOnly?.unsupported ?? []))].sort(),
      byTorch,
    },
    holdsFor: parts[0]?.[1].holdsFor ?? 'no file',
    notes: [...notes, ...parts.flatMap(([f, r]) => (r.notes ?? []).map((n) => `${f}: ${n}`))],
  };
}

/**
 * For a checkpoint read from memory (no file to scan): the globals the reader saw, classified by
 * name and by whether they were called. Coarser than `scanFile`; only tests and in-memory
 * readings use it.
 */
export function scanSecurity(globals: GlobalRef[], root: PyValue): SecurityReport {
  void root;
  const merged = new Map<string, SecurityGlobal>();
  for (const g of globals) {
    const name = `${g.module}.${g.name}`;
    const byName = nameClass(g.module, g.name);
    const cls = byName?.cls ?? (g.calls > 0 && !looksLikeClass(g.module, g.name) ? 'dangerous' : 'unknown-class');
    const reason = byName?.reason ?? (cls === 'dangerous' ? `calls function ${name}` : `${name} must be importable to load the file`);
    const prev = merged.get(name);
    if (prev) prev.calls += g.calls;
    else merged.set(name, { name, class: cls, reason, calls: g.calls });
  }
  const list = [...merged.values()];
  const verdict = list.reduce<SecurityReport['verdict']>((w, g) => worse(w, g.class), 'safe');
  return withKnownClasses({ verdict, globals: list, weightsOnlyLoadable: verdict === 'safe' });
}

/** One name's class by the name alone (a name nothing is known about must be importable: `unknown-class`). */
export function classifyGlobal(module: string, name: string): { cls: SecurityReport['verdict']; reason: string } {
  const c = nameClass(module, name);
  return c ? { cls: c.cls, reason: c.reason } : { cls: 'unknown-class', reason: `${module}.${name} must be importable to load the file` };
}
