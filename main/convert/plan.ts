import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConversionPlan, DeviceChange, KeyChange, OutputPlan, StateDictPlan } from '../../shared/convert.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { presetText } from '../../shared/presets.ts';
import { rootStorage, typeName, type Checkpoint } from '../checkpoint/inspect.ts';
import type { Role } from '../checkpoint/roles.ts';
import { valueAt } from '../checkpoint/tree.ts';
import { PyDict, pyRepr } from '../formats/values/python-values.ts';
import { TorchStorage } from '../formats/values/torch-values.ts';
import { deviceMapper, keyMapper, type KeyMapper } from './key-rules.ts';
import { plural } from '../../shared/plural.ts';

/** Module classes that only wrap another module under `_modules['module']` or `['_orig_mod']`. */
export const WRAPPER_CLASSES: Record<string, string> = {
  'torch.nn.parallel.data_parallel.DataParallel': 'module',
  'torch.nn.parallel.distributed.DistributedDataParallel': 'module',
  'torch._dynamo.eval_frame.OptimizedModule': '_orig_mod',
};

export interface RoleMapping {
  role: Role;
  mapper: KeyMapper;
  plan: StateDictPlan;
}

/** Whole pickled modules that are already DataParallel/DDP: the dp and ddp presets only retag them. */
const DATA_PARALLEL_CLASSES = new Set(['torch.nn.parallel.data_parallel.DataParallel', 'torch.nn.parallel.distributed.DistributedDataParallel']);

/**
 * The rules as they apply to this checkpoint: dp/ddp on a whole pickled plain model write its
 * state dict (with `module.` keys), since a pickled model cannot be re-wrapped by rewriting the
 * file; a pickled DataParallel is already wrapped and is only retagged.
 */
export function rulesFor(ck: Checkpoint, rules: ConversionRules): ConversionRules {
  const p = rules.preset;
  if (!p || (p.name !== 'dp' && p.name !== 'ddp') || rules.exportStateDict) return rules;
  const modules = ck.roles.filter((r) => r.kind === 'module' && !r.note);
  if (!modules.length || modules.some((m) => m.path.length === 0 && m.className && DATA_PARALLEL_CLASSES.has(m.className))) return rules;
  return { ...rules, exportStateDict: true };
}

/** The state dicts (and, with exportStateDict, modules) the rules apply to, with their key maps. */
export function mapRoles(ck: Checkpoint, rules: ConversionRules): RoleMapping[] {
  const lightning = ck.roles.some((r) => r.kind === 'lightning');
  const out: RoleMapping[] = [];
  for (const role of ck.roles) {
    if (role.kind !== 'state-dict' && !(role.kind === 'module' && rules.exportStateDict)) continue;
    const entries = role.entries ?? [];
    const keys = entries.map((e) => e.key);
    const mapper = keyMapper(keys, rules, lightning);
    const changes: KeyChange[] = keys.map((k) => ({ from: k, to: mapper.map(k) }));
    const metadata: KeyChange[] = [];
    const sd = role.kind === 'state-dict' ? valueAt(ck.reading.root, role.path) : null;
    const meta = sd instanceof PyDict ? sd.attrs?.get('_metadata') : undefined;
    if (meta instanceof PyDict) for (const [k] of meta.entries) metadata.push({ from: String(k), to: mapper.mapModulePath(String(k)) });
    out.push({
      role,
      mapper,
      plan: {
        path: role.path,
        kind: role.kind as 'state-dict' | 'module',
        ...(role.className ? { className: role.className } : {}),
        keys: changes,
        stripped: mapper.stripped,
        added: mapper.added,
        metadata,
      },
    });
  }
  return out;
}

/** Output file names: one file, or `<name>.rank<r><ext>` per DDP rank. */
export function outputFiles(source: string, output: string | null, rules: ConversionRules): { file: string; rank?: number }[] {
  const preset = rules.preset;
  const target = output ?? defaultOutput(source, rules);
  if (preset?.name === 'ddp' && preset.worldSize > 1) {
    const ext = path.extname(target) || '.pth';
    const base = target.slice(0, target.length - path.extname(target).length);
    return Array.from({ length: preset.worldSize }, (_, r) => ({ file: `${base}.rank${r}${ext}`, rank: r }));
  }
  return [{ file: target, ...(preset?.name === 'ddp' ? { rank: 0 } : {}) }];
}

function defaultOutput(source: string, rules: ConversionRules): string {
  // `checkpoint.pth.tar` (the ImageNet example's name) becomes `checkpoint.cpu.pth.tar`
  const ext = /\.(pth?|bin)\.tar$/i.exec(source)?.[0] ?? path.extname(source);
  const tag = rules.preset
    ? presetText(rules.preset)
        .replace(/[^\w:]+.*$/, '')
        .replace(':', '')
    : 'converted';
  return `${source.slice(0, source.length - ext.length)}.${tag}${ext || '.pt'}`;
}

export function planConversion(ck: Checkpoint, rules: ConversionRules, output: string | null, roles = mapRoles(ck, rules)): ConversionPlan {
  const warnings: string[] = [];
  const errors: string[] = [];
  for (const r of roles) {
    // a state dict's keys are a dict's, so distinct (PyDict): where the rules rename none, or only
    // strip the prefixes every key shares and add some, no two meet (a 100,000- or 500,000-key map
    // saved); a module's keys are joined paths and are always checked
    if (r.role.kind === 'state-dict' && (r.mapper.distinctStayDistinct || r.plan.keys.every((c) => c.to === null || c.to === c.from))) continue;
    const seen = new Map<string, string>();
    for (const c of r.plan.keys) {
      if (c.to === null) continue;
      const prev = seen.get(c.to);
      if (prev !== undefined) errors.push(`keys '${prev}' and '${c.from}' would both become '${c.to}'`);
      seen.set(c.to, c.from);
    }
  }
  const modules = ck.roles.filter((r) => r.kind === 'module');
  const preset = rules.preset;
  if (ck.report.format === 'torchscript') {
    errors.push(
      'a TorchScript archive holds compiled code as well as weights; load it with torch.jit.load(f, map_location=...) (ckpt does not rewrite TorchScript)',
    );
  }
  if (ck.report.format === 'onnx') {
    errors.push('an ONNX graph, not a torch checkpoint: ckpt convert does not rewrite it; use it as the graph: `ckpt verify --model <this file>`');
  }
  let rootChange: string | null = null;
  if (rules.unwrap) {
    const primary = primaryStateDict(roles);
    if (!primary) errors.push('--unwrap: the file holds no state dict to unwrap to');
    else if (primary.role.path.length) rootChange = `the container is replaced by its state dict at ${primary.role.path.join('/')}`;
  }
  const rewrap = preset && (preset.name === 'dp' || preset.name === 'ddp');
  const dataParallel = modules.find((m) => m.path.length === 0 && m.className && DATA_PARALLEL_CLASSES.has(m.className));
  if (modules.length && rewrap && dataParallel && !rules.exportStateDict) {
    // already wrapped: the whole module stays as it is, only its storages move
    rootChange = `the pickled ${dataParallel.className!.split('.').pop()} is kept as it is (already wrapped); only device tags change${preset.name === 'ddp' && preset.worldSize > 1 ? `, one file per rank` : ''}`;
    warnings.push('whole pickled module: loading it still needs the original classes (--export-state-dict writes a plain state dict)');
  } else if (modules.length && rewrap && rules.exportStateDict && !dataParallel) {
    warnings.push(
      `a pickled plain model cannot be wrapped in ${preset.name === 'dp' ? 'DataParallel' : 'DDP'} by rewriting the file, so its state dict is written, with 'module.' keys: load it into ${preset.name === 'dp' ? 'nn.DataParallel(model)' : 'DDP(model)'}`,
    );
  } else if (modules.length && !rules.exportStateDict) {
    if (rewrap) {
      errors.push(
        `a whole pickled module (${modules[0]!.className}) cannot be re-wrapped in ${preset.name === 'dp' ? 'DataParallel' : 'DDP'} by rewriting the file; add --export-state-dict to write its state dict with 'module.' keys`,
      );
    } else {
      const wrapped = modules.find((m) => m.className && WRAPPER_CLASSES[m.className]);
      if (wrapped && preset) rootChange = `the ${wrapped.className!.split('.').pop()} wrapper is removed; the inner model is kept as a whole pickled module`;
      warnings.push(
        'whole pickled module: device tags change, the class names stay; loading it still needs the original classes (--export-state-dict writes a plain state dict)',
      );
    }
  }
  if (rules.exportStateDict) {
    if (!modules.length) warnings.push('--export-state-dict: no whole pickled module in this file; nothing to export');
    else rootChange = `the pickled module ${modules[0]!.className} is replaced by its state dict (${plural(modules[0]!.entries?.length ?? 0, 'key')})`;
  }
  if (!roles.length && !modules.length) warnings.push('no model state dict was recognised: only device tags change');
  const newDtypes = new Set<string>();
  for (const t of ck.tensors) if (!t.tensor.dtype.storage) newDtypes.add(t.tensor.dtype.name);
  if (newDtypes.size)
    warnings.push(
      `${[...newDtypes].join(', ')} tensors are written with _rebuild_tensor_v3 and load in torch 2.1 or newer (uint16/32/64 in 2.3), not in torch 1.x`,
    );

  // tensors and bytes per source device tag, each storage's bytes counted once (a set of the
  // shared storages only, not of every storage of a 500,000-tensor file)
  const byLocation = new Map<string, { tensors: number; bytes: number }>();
  const counted = new Set<TorchStorage>();
  for (const t of ck.tensors) {
    if (!t.tensor.storage) continue;
    const s = rootStorage(t.tensor.storage);
    let at = byLocation.get(s.location);
    if (!at) byLocation.set(s.location, (at = { tensors: 0, bytes: 0 }));
    at.tensors++;
    // a storage only one path uses is counted where it is met; a shared one the first time
    if (!ck.sharedStorages.has(s)) at.bytes += s.nbytes;
    else {
      const before = counted.size;
      if (counted.add(s).size > before) at.bytes += s.nbytes;
    }
  }
  const outputs: OutputPlan[] = outputFiles(ck.file, output, rules).map(({ file, rank }) => {
    const map = deviceMapper(rules, rank ?? 0);
    const changes: DeviceChange[] = [];
    for (const [from, { tensors, bytes }] of byLocation) changes.push({ from, to: map(from), tensors, bytes });
    return { file, ...(rank !== undefined ? { rank } : {}), devices: changes, exists: fs.existsSync(file) };
  });
  if (path.resolve(outputs[0]!.file) === path.resolve(ck.file)) errors.push('the output would replace the source; choose another -o');
  const dropped = roles.reduce((a, r) => a + r.plan.keys.filter((k) => k.to === null).length, 0);
  return {
    source: ck.file,
    format: ck.report.format,
    rules,
    layoutBefore: ck.report.layout,
    layoutAfter: preset ? presetText(preset) : 'custom',
    stateDicts: roles.map((r) => r.plan),
    outputs,
    rootChange,
    tensors: { kept: ck.tensors.length - dropped, dropped },
    carried: rules.unwrap ? [] : carriedContent(ck, roles),
    warnings,
    errors,
  };
}

export function primaryStateDict(roles: RoleMapping[]): RoleMapping | undefined {
  return roles
    .filter((r) => r.role.kind === 'state-dict')
    .reduce<RoleMapping | undefined>((best, r) => (r.plan.keys.length > (best?.plan.keys.length ?? -1) ? r : best), undefined);
}

function carriedContent(ck: Checkpoint, roles: RoleMapping[]): string[] {
  const root = ck.reading.root;
  if (!(root instanceof PyDict) || roles.some((r) => r.role.path.length === 0)) return [];
  const rolePaths = new Set(roles.map((r) => String(r.role.path[0])));
  return root.entries
    .filter(([k]) => !rolePaths.has(String(k)))
    .slice(0, 20)
    .map(([k, v]) => `${String(k)}: ${typeName(v)}${typeof v === 'object' && v !== null && !(v instanceof PyDict) ? '' : ` ${pyRepr(v).slice(0, 40)}`}`);
}
