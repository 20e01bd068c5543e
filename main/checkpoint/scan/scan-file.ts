import type { SecurityClass, SecurityGlobal, SecurityReport, WeightsOnlyVerdict } from '../../../shared/inspect.ts';
import { asCheckpointError } from '../../errors.ts';
import { CLASS_ORDER, worse } from '../../formats/pickle/scan/findings.ts';
import { PROFILES } from '../../formats/pickle/scan/torch-allowlists.ts';
import { FileReader, type RandomAccessReader } from '../../io/random-access.ts';
import type { FileSites, PickleSite } from './pickle-sites.ts';
import { findPickleSites } from './reach.ts';
import { bySeverityThenName } from './global-order.ts';
import type { PrescannedPickles } from '../../formats/torch/torch-zip.ts';

/**
 * The security verdict of one file, from every pickle in it (`findPickleSites`):
 * - `safe`: torch 2.13's `torch.load(f, weights_only=True)` accepts the file, or it has no pickle;
 * - `benign`: nothing runs foreign code, but torch's weights-only loader refuses it (numpy
 *   reconstruction, builtin data types, protocol-4 opcodes, a TorchScript or bare-pickle container);
 * - `unknown-class`: constructs classes that must be imported, and nothing else;
 * - `dangerous`: calls a function, reaches an attribute path, or names a gadget, anywhere in the
 *   file, including pickles torch.load would not reach.
 */
export function scanSites(found: FileSites): SecurityReport {
  const globals = new Map<string, SecurityGlobal>();
  const notes = [...found.notes];
  for (const site of found.sites) {
    if (site.scan.error) notes.push(`${site.where}: ${site.scan.error}; the verdict covers everything before it`);
    for (const f of site.scan.findings) {
      const unreached = site.reach !== 'torch.load' && f.class === 'dangerous';
      const reason = unreached
        ? `${f.reason} (in ${site.where}: torch.load would not reach it, but ${site.by ?? 'pickle.load'}, joblib or a hub's loader would)`
        : f.reason;
      const prev = globals.get(f.name);
      if (prev && CLASS_ORDER.indexOf(prev.class) >= CLASS_ORDER.indexOf(f.class)) {
        prev.calls += f.calls;
        continue;
      }
      globals.set(f.name, {
        name: f.name,
        class: f.class,
        reason,
        calls: f.calls + (prev?.calls ?? 0),
        offset: f.offset,
        record: site.where,
        ...(f.call !== undefined ? { example: f.call } : {}),
      });
    }
  }
  const reached = found.sites.filter((s) => s.reach === 'torch.load');
  const byTorch: Record<string, WeightsOnlyVerdict> = {};
  for (const p of PROFILES) byTorch[p.torch] = weightsOnlyOf(found, reached, p.torch);
  const newest = byTorch[PROFILES[0]!.torch]!;
  const list = [...globals.values()].sort(bySeverityThenName);
  let verdict = list.reduce<SecurityClass>((w, g) => worse(w, g.class), 'safe');
  for (const s of found.sites.filter((x) => x.scan.anomaly)) {
    verdict = 'dangerous';
    const torchLoads = s.reach === 'torch.load' && newest.loads;
    notes.push(
      `${s.where}: malformed pickle: ${s.scan.anomaly}; parsers disagree on such files, a known scanner-bypass technique; ${torchLoads ? 'torch.load(weights_only=True) would load it' : "torch.load(weights_only=True) refuses it, but pickle.load (CPython's C unpickler) reads it"}`,
    );
  }
  if (verdict === 'safe' && found.unrecognised) {
    verdict = 'benign';
    notes.push('not a pickle: no loader opens these bytes, so nothing in them runs; torch.load refuses the file');
  }
  if (verdict === 'safe' && !found.noPickle && !newest.loads) {
    verdict = 'benign';
    notes.push(`nothing in it runs code, but torch.load(f, weights_only=True) refuses it: ${newest.refusal}`);
  }
  for (const s of found.sites)
    if (s.reach === 'unreached' && s.scan.findings.some((f) => f.class === 'dangerous'))
      notes.push(`${s.where}: torch.load would not reach it, but ${s.by ?? 'pickle.load'}, joblib or a hub's loader would run it`);
  const unsupported = [...new Set(reached.flatMap((s) => s.scan.unsupported))].sort();
  return {
    verdict,
    globals: list,
    weightsOnlyLoadable: newest.loads,
    weightsOnly: { ...newest, unsupported, byTorch },
    holdsFor: holdsFor(verdict, byTorch),
    notes,
  };
}

function weightsOnlyOf(found: FileSites, reached: PickleSite[], torch: string): WeightsOnlyVerdict {
  if (found.loadsWithoutPickle?.includes(torch)) return { loads: true };
  if (found.jitLoadsIn?.includes(torch)) {
    const bad = found.sites.find((s) => s.reach === 'loader' && s.scan.findings.some((f) => f.class === 'dangerous'));
    return bad ? { loads: false, refusal: `${bad.where}: torch.jit.load cannot resolve its globals` } : { loads: true };
  }
  if (found.containerRefusal && (!found.containerRefusalIn || found.containerRefusalIn.includes(torch)))
    return { loads: false, refusal: found.containerRefusal };
  if (reached.length === 0) return { loads: false, refusal: 'no pickle torch.load reads' };
  for (const s of reached) {
    const r = s.scan.weightsOnly.get(torch);
    if (r) return { loads: false, refusal: `${s.where}: ${r}` };
  }
  return { loads: true };
}

function holdsFor(verdict: SecurityClass, byTorch: Record<string, WeightsOnlyVerdict>): string {
  if (verdict !== 'safe') return 'every torch version: torch.load(weights_only=False), pickle.load and torch < 2.6 defaults unpickle it as described';
  const ok = Object.entries(byTorch)
    .filter(([, v]) => v.loads)
    .map(([t]) => t);
  return ok.length
    ? `torch.load(weights_only=True) as in torch ${ok.join(' and ')} (allowlists checked name by name; torch ≥ 2.6 uses weights_only=True by default)`
    : 'no pickle in the file';
}

/**
 * Scans a file by path; an unreadable file throws a typed error (the CLI's exit code 2).
 * `prescanned` holds pickles of this file a reader has walked already (the same verdicts, one walk).
 */
export function scanFile(path: string, prescanned?: PrescannedPickles): SecurityReport {
  let reader: RandomAccessReader;
  try {
    reader = new FileReader(path);
  } catch (e) {
    throw asCheckpointError(e, path);
  }
  try {
    return scanSites(findPickleSites(reader, 0, prescanned));
  } catch (e) {
    throw asCheckpointError(e, path);
  } finally {
    reader.close();
  }
}
