/**
 * What a re-shard will write, decided before anything is written: the output files, which tensor
 * goes where (the output layout), aliases kept once, content the target cannot hold, and problems
 * that stop it. The same plan drives the writers, the dry run and the view.
 */
import type { WeightsOnlyRefusal } from '../formats/pickle/pickler.ts';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NO_RULES, type CastSummary, type ConversionRules } from '../../shared/presets.ts';
import { castTree } from '../convert/cast-tree.ts';
import type { DroppedItem, LayoutColumn, LayoutRow, ReshardPlan, ReshardRequest, ShardLayout, TensorAlias } from '../../shared/reshard.ts';
import { analyse, rootStorage, type Checkpoint } from '../checkpoint/inspect.ts';
import { codeFreeOutput } from './code-free.ts';
import { walkTensors } from '../checkpoint/tree.ts';
import { buildOutputTree, planCoverageProblem } from '../convert/build-output.ts';
import { mapRoles, planConversion } from '../convert/plan.ts';
import { METADATA_FILE } from '../formats/dcp/dcp.ts';
import { dataFileName, type DcpWriteItem } from '../formats/dcp/dcp-writer.ts';
import { fail } from '../errors.ts';
import { PyDict, type PyValue } from '../formats/values/python-values.ts';
import { safetensorsTag } from '../formats/safetensors/safetensors-writer.ts';
import { TorchTensor, type TorchStorage } from '../formats/values/torch-values.ts';
import { tensorSource } from '../formats/values/reshaped-source.ts';
import { dcpEntries, tensorEntries } from '../checkpoint/flatten.ts';
import { indexJson, splitIntoShards, type ShardSplit } from './hf-shards.ts';
import type { ReshardSource } from '../inputs/sources.ts';
import { plural } from '../../shared/plural.ts';
import { weightsOnlyRefusals } from '../convert/write-checkpoint.ts';

export interface NamedTensor {
  name: string;
  tensor: TorchTensor;
}

export type WriteJob =
  | {
      kind: 'torch';
      ck: Checkpoint;
      rules: ConversionRules;
      tree: PyValue;
      outputs: { file: string; rank?: number }[];
      onWeightsOnlyRefusal(what: WeightsOnlyRefusal): void;
    }
  | { kind: 'safetensors'; file: string; tensors: NamedTensor[]; metadata: [string, string][] }
  | { kind: 'shards'; dir: string; format: 'torch' | 'safetensors'; split: ShardSplit<TorchTensor>; index: string | null; metadata: [string, string][] }
  | { kind: 'dcp'; dir: string; ranks: number; items: DcpWriteItem[] };

export interface Planned {
  plan: ReshardPlan;
  job: WriteJob | null;
  /** `--dtype`: what the casts did so far (counts are final once the job is written) */
  cast: () => CastSummary | null;
}

/** The bytes of a tensor, as a source (see formats/values/reshaped-source.ts). */
export { tensorSource };

/**
 * safetensors files written by `safetensors.torch` conversion keep tied names in `__metadata__`
 * as `{alias: kept}` next to `format: pt`; a torch file gets them back as one shared tensor.
 */
function restoreAliases(root: PyValue, records: Record<string, string>, notes: string[]): PyValue {
  if (!(root instanceof PyDict) || records['metadata.format'] !== 'pt') return root;
  const out = new PyDict(root.ordered);
  for (const [k, v] of root.entries) out.set(k, v);
  for (const [key, kept] of Object.entries(records)) {
    if (!key.startsWith('metadata.') || key === 'metadata.format') continue;
    const alias = key.slice('metadata.'.length);
    const t = root.get(kept);
    if (t instanceof TorchTensor && !root.has(alias)) {
      out.set(alias, t);
      notes.push(`${alias} restored as an alias of ${kept} (from __metadata__)`);
    }
  }
  return out;
}

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Files a folder output may already hold when --force replaces it. */
const OURS = /^(\.metadata|__\d+_\d+\.distcp|.*\.safetensors|.*\.bin|.*\.index\.json|\.ckpt-batch(\.json)?)$/;

function folderProblem(dir: string, force: boolean): string | null {
  if (!exists(dir)) return null;
  if (!fs.statSync(dir).isDirectory()) return `${dir} exists and is not a folder`;
  const names = fs.readdirSync(dir);
  if (!names.length) return null;
  if (!force) return `${dir} already exists; pass --force to replace it`;
  const foreign = names.filter((n) => !OURS.test(n));
  return foreign.length
    ? `${dir} holds other files (${foreign.slice(0, 3).join(', ')}); --force only replaces a folder of checkpoint files, choose a new or empty folder`
    : null;
}

function layoutOf(kind: ShardLayout['kind'], title: string, columns: LayoutColumn[], rows: LayoutRow[], notes: string[] = []): ShardLayout {
  return { kind, title, columns, rows, items: [], notes };
}

function wholeRows(tensors: NamedTensor[], columnOf: (name: string) => number, paths?: Map<string, (string | number)[]>): LayoutRow[] {
  return tensors.map(({ name, tensor: t }) => ({
    name,
    path: paths?.get(name) ?? [name],
    dtype: t.dtype.name,
    shape: t.shape,
    bytes: t.nbytes,
    pieces: [{ column: columnOf(name), offsets: t.shape.map(() => 0), sizes: t.shape, bytes: t.nbytes, replica: false }],
    spread: 'whole',
  }));
}

/** Tensors several names point at with the same view: one kept (the first by name, as safetensors' `_remove_duplicate_names`), the others aliases. */
function dedupe(tensors: NamedTensor[], warnings: string[]): { kept: NamedTensor[]; aliases: TensorAlias[] } {
  const groups = new Map<string, NamedTensor[]>();
  const byStorage = new Map<TorchStorage, Set<string>>();
  for (const e of tensors) {
    const t = e.tensor;
    const s = rootStorage(t.storage!);
    const key = [t.dtype.name, t.shape.join(','), t.stride.join(','), t.storageOffset + (t.storage!.viewOf ? t.storage!.viewOffset / t.dtype.size : 0)].join(
      '|',
    );
    const byView = byStorage.get(s) ?? new Set<string>();
    byView.add(key);
    byStorage.set(s, byView);
    const gk = `${groupsId(s)}|${key}`;
    const g = groups.get(gk) ?? [];
    g.push(e);
    groups.set(gk, g);
  }
  const aliases: TensorAlias[] = [];
  const dropped = new Set<NamedTensor>();
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    const keep = g.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))[0]!;
    for (const e of g)
      if (e !== keep) {
        aliases.push({ alias: e.name, kept: keep.name });
        dropped.add(e);
      }
  }
  for (const [, views] of byStorage) {
    if (views.size > 1) warnings.push(`${views.size} tensors are different views of one storage; each is written as its own copy`);
  }
  return { kept: tensors.filter((e) => !dropped.has(e)), aliases };
}

const storageIds = new WeakMap<TorchStorage, number>();
let nextStorageId = 0;
function groupsId(s: TorchStorage): number {
  let id = storageIds.get(s);
  if (id === undefined) storageIds.set(s, (id = nextStorageId++));
  return id;
}

/** torch.chunk along dim 0 over `ranks`, as a `Shard(0)` placement splits it; small tensors stay whole on the least loaded rank. */
function dim0Chunks(t: TorchTensor, ranks: number, load: number[]): { offsets: number[]; sizes: number[]; rank: number }[] {
  const d0 = t.shape[0] ?? 0;
  if (ranks > 1 && t.shape.length > 0 && d0 >= 2) {
    const full = Math.ceil(d0 / ranks);
    const out: { offsets: number[]; sizes: number[]; rank: number }[] = [];
    for (let r = 0; r < ranks; r++) {
      const start = Math.min(d0, r * full);
      const end = Math.min(d0, r * full + full);
      if (end <= start) continue;
      const sizes = [end - start, ...t.shape.slice(1)];
      out.push({ offsets: [start, ...t.shape.slice(1).map(() => 0)], sizes, rank: r });
      load[r]! += (t.nbytes / d0) * (end - start);
    }
    return out;
  }
  const r = load.indexOf(Math.min(...load));
  load[r]! += t.nbytes;
  return [{ offsets: t.shape.map(() => 0), sizes: [...t.shape], rank: r }];
}

export function planReshard(src: ReshardSource, req: ReshardRequest): Planned {
  const warnings: string[] = [...src.notes];
  const errors: string[] = [];
  const dropped: DroppedItem[] = [];
  let aliases: TensorAlias[] = [];
  const input = src.layout();
  const target = req.target;
  const out = req.output;
  let cast: Planned['cast'] = () => null;
  let codeFree: ReshardPlan['codeFree'];
  const finish = (output: ShardLayout, totalBytes: number, job: WriteJob | null): Planned => ({
    plan: { request: req, input, output, aliases, dropped, totalBytes, warnings, errors, ...(codeFree ? { codeFree } : {}) },
    job: errors.length ? null : job,
    cast,
  });
  const emptyOut = layoutOf('output', 'nothing', [], []);
  if (!out) {
    errors.push('say where to write: -o <file or folder>');
    return finish(emptyOut, 0, null);
  }
  const resolvedInputs = new Set(src.files.map((f) => path.resolve(f)));
  if (resolvedInputs.has(path.resolve(out)) || path.resolve(out) === path.resolve(src.name))
    errors.push('the output would replace the input; choose another -o');
  if ((target.kind === 'ranks' || target.kind === 'dcp') && req.format === 'safetensors')
    errors.push(`--to ${target.kind} writes torch files; --format safetensors goes with single or shards`);
  if (req.preset && !(target.kind === 'single' && req.format === 'torch'))
    errors.push('--preset applies to --to single with torch output (rank files get the ddp preset)');
  if (req.takeRank !== null && !src.family) warnings.push('--take-rank applies to rank families; ignored');
  if (errors.length) return finish(emptyOut, 0, null);

  const notes: string[] = [];
  let root = src.root(req.takeRank);
  root = restoreAliases(root, src.reading.records, notes);
  warnings.push(...notes);
  const casting = castTree(root, req);
  root = casting.tree;
  cast = casting.summary;

  if ((target.kind === 'single' && req.format === 'torch') || target.kind === 'ranks') {
    // a safetensors header's __metadata__ has no place in a torch file (aliases were restored above)
    for (const [k, v] of Object.entries(src.reading.records)) {
      if (!k.startsWith('metadata.') || k === 'metadata.format' || notes.some((n) => n.startsWith(`${k.slice(9)} restored`))) continue;
      dropped.push({
        name: `__metadata__.${k.slice(9)}`,
        type: 'str',
        reason: `safetensors metadata (${JSON.stringify(v).slice(0, 40)}) has no place in a torch file`,
      });
    }
    const rules: ConversionRules = { ...NO_RULES, preset: target.kind === 'ranks' ? { name: 'ddp', worldSize: target.count } : req.preset };
    const ck = analyse(src.name, { ...src.reading, root }, { fileBytes: src.bytes });
    const cplan = planConversion(ck, rules, out);
    errors.push(...cplan.errors);
    warnings.push(...cplan.warnings.filter((w) => !w.startsWith('no model state dict')));
    for (const o of cplan.outputs) if (o.exists && !req.force) errors.push(`${o.file} already exists; pass --force to overwrite it`);
    if (cplan.outputs.some((o) => resolvedInputs.has(path.resolve(o.file)))) errors.push('an output would replace an input; choose another -o');
    const roles = mapRoles(ck, rules);
    let tree = buildOutputTree(ck, rules, roles);
    const uncovered = planCoverageProblem(tree, roles, rules);
    if (uncovered) errors.push(uncovered);
    // after the plan's own errors, so that a refused input gets one reason
    const free = errors.length ? null : codeFreeOutput(tree, src.files, src.pickleScans, !!req.keepObjects);
    if (free && 'refusal' in free) errors.push(free.refusal);
    else if (free) ({ tree, report: codeFree } = free);
    const tensors = walkTensors(tree);
    const storages = new Set(tensors.filter((t) => t.tensor.storage).map((t) => rootStorage(t.tensor.storage!)));
    // every output file holds every storage (one per rank, or the one file): its tensor data, planned
    const perFile = [...storages].reduce((a, s) => a + s.nbytes, 0);
    const columns: LayoutColumn[] = cplan.outputs.map((o) => ({ file: o.file, rank: o.rank ?? null, bytes: perFile, role: 'data' }));
    const rows: LayoutRow[] = tensors.map(({ path: p, tensor: t }) => ({
      name: p.map(String).join('.'),
      path: p,
      dtype: t.dtype.name,
      shape: t.shape,
      bytes: t.nbytes,
      spread: columns.length > 1 ? 'replicated' : 'whole',
      pieces: columns.map((_, i) => ({ column: i, offsets: t.shape.map(() => 0), sizes: t.shape, bytes: t.nbytes, replica: i > 0 })),
    }));
    const bytes = perFile * columns.length;
    const title = target.kind === 'ranks' ? `${target.count} rank files (ddp)` : `one torch file${req.preset ? ` (${req.preset.name})` : ''}`;
    return finish(layoutOf('output', title, columns, rows), bytes, {
      kind: 'torch',
      ck,
      rules,
      tree,
      outputs: cplan.outputs.map((o) => ({ file: o.file, ...(o.rank !== undefined ? { rank: o.rank } : {}) })),
      // a refusal without --keep-objects; with it, the report's `kept` says so (write-checkpoint.ts)
      onWeightsOnlyRefusal: weightsOnlyRefusals(src.name, !!req.keepObjects, {
        add: (what) => void (codeFree && !codeFree.kept.includes(what) && codeFree.kept.push(what)),
      }),
    });
  }

  if (target.kind === 'single' || target.kind === 'shards') {
    const flat = tensorEntries(root);
    dropped.push(...flat.dropped);
    let tensors: NamedTensor[] = flat.tensors.map((e) => ({ name: e.name, tensor: e.tensor }));
    const paths = new Map(flat.tensors.map((e) => [e.name, e.path]));
    const sf = req.format === 'safetensors';
    if (sf) {
      const unsupported = tensors.filter((e) => !safetensorsTag(e.tensor.dtype));
      for (const e of unsupported) dropped.push({ name: e.name, type: e.tensor.dtype.name, reason: `safetensors has no dtype for ${e.tensor.dtype.name}` });
      tensors = tensors.filter((e) => !unsupported.includes(e));
      const d = dedupe(tensors, warnings);
      tensors = d.kept;
      aliases = d.aliases;
    }
    // __metadata__: the source's (safetensors inputs), then format and the aliases as safetensors' convert records them
    const metadata: [string, string][] = [];
    for (const [k, v] of Object.entries(src.reading.records))
      if (k.startsWith('metadata.') && k !== 'metadata.format' && !tensors.some((t) => `metadata.${t.name}` === k)) metadata.push([k.slice(9), v]);
    const meta: [string, string][] = [
      ['format', 'pt'],
      ...metadata.filter(([k]) => !aliases.some((a) => a.alias === k)),
      ...aliases.map((a): [string, string] => [a.alias, a.kept]),
    ];
    if (target.kind === 'single') {
      if (exists(out) && !req.force) errors.push(`${out} already exists; pass --force to overwrite it`);
      if (!sf) return finish(emptyOut, 0, null); // unreachable: torch single is handled above
      const bytes = tensors.reduce((a, e) => a + e.tensor.nbytes, 0);
      return finish(
        layoutOf(
          'output',
          'one safetensors file',
          [{ file: out, rank: null, bytes, role: 'data' }],
          wholeRows(tensors, () => 0, paths),
        ),
        bytes,
        { kind: 'safetensors', file: out, tensors, metadata: meta },
      );
    }
    const problem = folderProblem(out, req.force);
    if (problem) errors.push(problem);
    const seen = new Set<TorchStorage>();
    const split = splitIntoShards(
      tensors.map((e) => {
        const s = rootStorage(e.tensor.storage!);
        // safetensors writes each tensor's own bytes; a .bin shard keeps storages (and their sharing) whole
        const first = !seen.has(s);
        seen.add(s);
        return { name: e.name, item: e.tensor, bytes: sf ? e.tensor.nbytes : first ? s.nbytes : 0, storage: sf ? null : s };
      }),
      target.maxShardBytes,
      req.format,
    );
    const index = split.indexName ? indexJson(split) : null;
    const columns: LayoutColumn[] = [
      ...(split.indexName ? [{ file: path.join(out, split.indexName), rank: null, bytes: index!.length, role: 'index' as const }] : []),
      ...split.files.map((f): LayoutColumn => ({ file: path.join(out, f.name), rank: null, bytes: f.bytes, role: 'data' })),
    ];
    const colOf = new Map(split.files.flatMap((f, i) => f.entries.map((e) => [e.name, i + (split.indexName ? 1 : 0)] as const)));
    if (split.files.length === 1) warnings.push(`everything fits in one shard: written as ${split.files[0]!.name} without an index, as Hugging Face does`);
    return finish(
      layoutOf(
        'output',
        `${split.files.length} ${sf ? 'safetensors' : 'torch .bin'} shard${split.files.length === 1 ? '' : 's'} of at most ${target.maxShardBytes} bytes`,
        columns,
        wholeRows(tensors, (n) => colOf.get(n) ?? 0, paths),
      ),
      split.files.reduce((a, f) => a + f.bytes, 0),
      { kind: 'shards', dir: out, format: req.format, split, index, metadata: meta },
    );
  }

  // dcp
  const problem = folderProblem(out, req.force);
  if (problem) errors.push(problem);
  // bytes items are loaded with torch.load(weights_only=False) (torch/distributed/checkpoint/
  // default_planner.py `DefaultLoadPlanner.load_bytes`): they follow the code-free rule all the same
  const free = errors.length ? null : codeFreeOutput(root, src.files, src.pickleScans, !!req.keepObjects);
  if (free && 'refusal' in free) {
    errors.push(free.refusal);
    return finish(emptyOut, 0, null);
  }
  if (free) ({ tree: root, report: codeFree } = free);
  let entries: ReturnType<typeof dcpEntries>;
  try {
    entries = dcpEntries(root);
  } catch (e) {
    errors.push((e as Error).message);
    return finish(emptyOut, 0, null);
  }
  dropped.push(...entries.dropped);
  const ranks = target.ranks;
  const load = new Array<number>(ranks).fill(0);
  const items: DcpWriteItem[] = [];
  for (const e of entries.entries) {
    const v = e.value;
    if (v instanceof TorchTensor) {
      if (!v.storage || (v.kind !== 'dense' && v.kind !== 'parameter')) {
        errors.push(`${e.name}: a ${v.subclass ?? v.kind} tensor cannot be written to a distributed checkpoint by ckpt`);
        continue;
      }
      items.push({ kind: 'tensor', fqn: e.name, path: e.path, source: tensorSource(v), requiresGrad: v.requiresGrad, chunks: dim0Chunks(v, ranks, load) });
    } else items.push({ kind: 'bytes', fqn: e.name, path: e.path, value: v, rank: 0 });
  }
  const columns: LayoutColumn[] = [
    { file: path.join(out, METADATA_FILE), rank: null, bytes: 0, role: 'metadata' },
    ...Array.from({ length: ranks }, (_, r): LayoutColumn => ({ file: path.join(out, dataFileName(r)), rank: r, bytes: Math.round(load[r]!), role: 'data' })),
  ];
  const rows: LayoutRow[] = items
    .filter((i) => i.kind === 'tensor')
    .map((i) => {
      const it = i as Extract<DcpWriteItem, { kind: 'tensor' }>;
      const es = it.source.dtype.size;
      return {
        name: it.fqn,
        path: it.path,
        dtype: it.source.dtype.name,
        shape: [...it.source.shape],
        bytes: it.source.numel * es,
        spread: it.chunks.length > 1 ? 'sharded' : 'whole',
        pieces: it.chunks.map((c) => ({
          column: c.rank + 1,
          offsets: c.offsets,
          sizes: c.sizes,
          bytes: c.sizes.reduce((a, b) => a * b, 1) * es,
          replica: false,
        })),
      };
    });
  const output = layoutOf('output', `DCP folder, ${plural(ranks, 'data file')}, ${plural(items.length, 'item')}`, columns, rows);
  output.items = items.filter((i) => i.kind === 'bytes').map((i) => ({ name: i.fqn, path: i.path, type: 'bytes', summary: '', column: 1 }));
  if (!items.length) fail('usage', 'the checkpoint holds nothing a distributed checkpoint can save');
  return finish(
    output,
    rows.reduce((a, r) => a + r.bytes, 0),
    { kind: 'dcp', dir: out, ranks, items },
  );
}
