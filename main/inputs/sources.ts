/**
 * Opens whatever a re-shard reads as ONE checkpoint, whichever files it is spread over: a single
 * file, a Hugging Face shard set, a rank family (DDP copies or FSDP shards) or a DCP folder. Also
 * describes the input's layout (files as columns, tensors as rows) for the plan and the view.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LayoutColumn, LayoutItem, LayoutPiece, LayoutRow, ReshardInputKind, ShardLayout } from '../../shared/reshard.ts';
import { someTensor, walkTensors } from '../checkpoint/tree.ts';
import { typeName } from '../checkpoint/inspect.ts';
import { groupFamilies, sniffCheckpoint } from './discover.ts';
import { readDcpFolder, METADATA_FILE, type DcpReading } from '../formats/dcp/dcp.ts';
import { asCheckpointError, fail } from '../errors.ts';
import type { FormatReading } from '../formats/values/format-reading.ts';
import { openFormat } from '../formats/open-format.ts';
import { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import { pyRepr, type PyValue } from '../formats/values/python-values.ts';
import { isShardIndexName, readShardIndex } from '../formats/safetensors/shard-index.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { deepSpeedSource } from './deepspeed-source.ts';
import { Family, type RankFile } from './family.ts';
import { resolveInput } from './resolve.ts';
import { dcpEntries } from '../checkpoint/flatten.ts';
import { isShardTensor } from './placements.ts';
import { dottedName } from '../checkpoint/replace-tensors.ts';
import { plural } from '../../shared/plural.ts';

export interface ReshardSource {
  kind: ReshardInputKind;
  /** the input as the user named it (a file, a folder, or the first rank file) */
  name: string;
  /** the files read, in column order */
  files: string[];
  /** set for rank families */
  family: Family | null;
  /** the reading of a single file, shard set or DCP folder; rank 0's for a family */
  reading: FormatReading;
  /** the one checkpoint: rank `take`'s for a family (consolidated when sharded), else the reading's root */
  root(take?: number | null): PyValue;
  layout(): ShardLayout;
  /** bytes of all input files */
  bytes: number;
  notes: string[];
  /**
   * The security scans of the pickles the readers walked, by file (single files and rank files),
   * so that scanning an input (`scanFile`) does not walk its pickle again.
   */
  pickleScans: ReadonlyMap<string, PrescannedPickles>;
  close(): void;
}

const size = (f: string): number => {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
};

/** The checkpoint files directly in a folder (not in sub-folders), by content. */
function checkpointsIn(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort()
    .map((n) => path.join(dir, n))
    .filter((f) => fs.statSync(f).isFile() && sniffCheckpoint(f));
}

/**
 * The rank family a file belongs to: the files beside it whose names differ only in the rank.
 * Null when it stands alone.
 */
export function familyOf(file: string): string[] | null {
  const dir = path.dirname(file);
  const group = groupFamilies(checkpointsIn(dir)).find((g) => g.files.includes(path.join(dir, path.basename(file))));
  return group && group.family ? group.files : null;
}

/** A file holding DTensor / ShardedTensor values (an FSDP SHARDED_STATE_DICT rank file). */
export function holdsShards(reading: FormatReading): boolean {
  return someTensor(reading.root, isShardTensor);
}

export function openSource(inputs: string[]): ReshardSource {
  if (inputs.length === 0) fail('usage', 'name the checkpoint to re-shard: a file, a DCP folder, a shard index or the rank files');
  for (const i of inputs) if (!fs.existsSync(i)) fail('io', `${i}: no such file or folder`, i);
  if (inputs.length > 1) {
    if (inputs.some((i) => fs.statSync(i).isDirectory())) fail('usage', 'several inputs are the rank files of one run; give files, not folders');
    return familySource(inputs, inputs[0]!, undefined, []);
  }
  const input = inputs[0]!;
  switch (resolveInput(input)) {
    case 'deepspeed':
      return deepSpeedSource(input);
    case 'dcp':
      return dcpSource(input);
    case 'folder':
      return folderSource(input);
    case 'shard-index':
      return shardSetSource(input);
    case 'file':
      break;
  }
  const scans = new PrescannedPickles();
  const reading = openFormat(input, { scans });
  if (holdsShards(reading)) {
    let family: string[] | null = null;
    try {
      family = familyOf(input);
    } finally {
      if (!family) reading.close();
    }
    if (!family) fail('usage', `${input} holds DTensor/ShardedTensor shards but no other rank files sit beside it; give every rank's file`, input);
    return familySource(family, input, { file: input, reading, scans }, [
      `${path.basename(input)} holds shards of an FSDP run: read with its ${family.length - 1} sibling rank file${family.length > 2 ? 's' : ''}`,
    ]);
  }
  return singleSource(input, reading, scans);
}

/** A folder that is neither DCP nor DeepSpeed: one shard set (its index) or one rank family in it. */
function folderSource(input: string): ReshardSource {
  const indexes = fs.readdirSync(input).filter(isShardIndexName);
  if (indexes.length === 1) return shardSetSource(path.join(input, indexes[0]!));
  const files = checkpointsIn(input);
  const groups = groupFamilies(files);
  if (groups.length === 1 && groups[0]!.family) return familySource(groups[0]!.files, input, undefined, []);
  if (indexes.length > 1) fail('usage', `${input} holds ${indexes.length} shard indexes (${indexes.join(', ')}); name the one to read`);
  return fail(
    'usage',
    `${input} is neither a DCP folder (no ${METADATA_FILE}) nor a folder of one shard set or one rank family (${files.length} checkpoint files); name the files to read`,
    input,
  );
}

function tensorRows(root: PyValue, column: (t: TorchTensor, p: (string | number)[]) => LayoutPiece[]): LayoutRow[] {
  return walkTensors(root).map(({ path: p, tensor: t }) => {
    const pieces = column(t, p);
    const whole = pieces.filter((x) => !x.replica);
    return {
      name: dottedName(p),
      path: p,
      dtype: t.dtype.name,
      shape: t.shape,
      bytes: t.nbytes,
      pieces,
      spread: whole.length > 1 ? 'sharded' : pieces.length > 1 ? 'replicated' : 'whole',
    };
  });
}

function wholePiece(t: TorchTensor, column: number, replica = false): LayoutPiece {
  return { column, offsets: t.shape.map(() => 0), sizes: t.shape, bytes: t.nbytes, replica };
}

/** Non-tensor values, as DCP would store them (one item per leaf), for the view. */
export function layoutItems(root: PyValue, column: number | null): LayoutItem[] {
  try {
    return dcpEntries(root)
      .entries.filter((e) => !(e.value instanceof TorchTensor))
      .map((e) => ({ name: e.name, path: e.path, type: typeName(e.value), summary: pyRepr(e.value).slice(0, 80), column }));
  } catch {
    return [];
  }
}

function singleSource(file: string, reading: FormatReading, scans: PrescannedPickles): ReshardSource {
  return {
    kind: 'single',
    name: file,
    files: [file],
    family: null,
    reading,
    root: () => reading.root,
    bytes: size(file),
    notes: [],
    pickleScans: new Map([[file, scans]]),
    layout: () => ({
      kind: 'single',
      title: `one ${reading.format} file`,
      columns: [{ file, rank: null, bytes: size(file), role: 'data' }],
      rows: tensorRows(reading.root, (t) => [wholePiece(t, 0)]),
      items: layoutItems(reading.root, 0),
      notes: [...reading.notes],
    }),
    close: () => reading.close(),
  };
}

function shardSetSource(indexPath: string): ReshardSource {
  const index = readShardIndex(indexPath);
  const reading = openFormat(indexPath);
  const files = index.shards.map((s) => path.join(index.dir, s));
  return {
    kind: 'shard-set',
    name: indexPath,
    files: [indexPath, ...files],
    family: null,
    reading,
    root: () => reading.root,
    bytes: files.reduce((a, f) => a + size(f), size(indexPath)),
    notes: [],
    pickleScans: new Map(), // the registry opens the shards itself
    layout: () => {
      const columns: LayoutColumn[] = [
        { file: indexPath, rank: null, bytes: size(indexPath), role: 'index' },
        ...files.map((f): LayoutColumn => ({ file: f, rank: null, bytes: size(f), role: 'data' })),
      ];
      const col = new Map(index.shards.map((s, i) => [s, i + 1]));
      return {
        kind: 'shard-set',
        title: `${plural(index.shards.length, 'shard')} with ${path.basename(indexPath)}`,
        columns,
        rows: tensorRows(reading.root, (t, p) => [wholePiece(t, col.get(index.weightMap.get(String(p[0])) ?? '') ?? 1)]),
        items: [],
        notes: [...reading.notes],
      };
    },
    close: () => reading.close(),
  };
}

const DCP_RANK = /^__(\d+)_\d+\.distcp$/;

function dcpSource(folder: string): ReshardSource {
  let reading: DcpReading;
  try {
    reading = readDcpFolder(folder);
  } catch (e) {
    throw asCheckpointError(e, folder);
  }
  const dataFiles = reading.dcp.files.map((f) => path.join(folder, f));
  const metaFile = path.join(folder, METADATA_FILE);
  return {
    kind: 'dcp',
    name: folder,
    files: [metaFile, ...dataFiles],
    family: null,
    reading,
    root: () => reading.root,
    bytes: dataFiles.reduce((a, f) => a + size(f), size(metaFile)),
    notes: [],
    pickleScans: new Map(), // the DCP reader walks its own pickles
    layout: () => {
      const columns: LayoutColumn[] = [
        { file: metaFile, rank: null, bytes: size(metaFile), role: 'metadata' },
        ...reading.dcp.files.map(
          (f): LayoutColumn => ({
            file: path.join(folder, f),
            rank: DCP_RANK.test(f) ? Number(DCP_RANK.exec(f)![1]) : null,
            bytes: size(path.join(folder, f)),
            role: 'data',
          }),
        ),
      ];
      const col = new Map(reading.dcp.files.map((f, i) => [f, i + 1]));
      const byTensor = new Map([...reading.assembled.values()].map((a) => [a.tensor, a]));
      const rows = tensorRows(reading.root, (t) => {
        const a = byTensor.get(t);
        if (!a) return [wholePiece(t, 0)];
        return a.pieces.map((p) => ({
          column: col.get(p.label) ?? 0,
          offsets: p.offsets,
          sizes: p.sizes,
          bytes: p.source.numel * p.source.dtype.size,
          replica: false,
        }));
      });
      const bytesCol = new Map(
        reading.dcp.items.filter((i) => i.kind === 'bytes').map((i) => [i.fqn, col.get(i.kind === 'bytes' ? i.storage.file : '') ?? null]),
      );
      const items = layoutItems(reading.root, null).map((it) => ({ ...it, column: bytesCol.get(it.name) ?? null }));
      return {
        kind: 'dcp',
        title: `DCP folder, ${plural(reading.dcp.files.length, 'data file')}, ${plural(reading.dcp.items.length, 'item')}`,
        columns,
        rows,
        items,
        notes: [...reading.notes],
      };
    },
    close: () => reading.close(),
  };
}

/** `opened`: one of the files, read already (Family.open takes it over). */
function familySource(files: string[], name: string, opened: Omit<RankFile, 'rank'> | undefined, notes: string[]): ReshardSource {
  const family = Family.open(files, opened);
  const base = family.ranks[0]!.reading;
  return {
    kind: family.sharded ? 'sharded-ranks' : 'rank-family',
    name,
    files: family.ranks.map((r) => r.file),
    family,
    reading: base,
    root: (take) => family.merged(take ?? 0),
    bytes: family.ranks.reduce((a, r) => a + size(r.file), 0),
    pickleScans: new Map(family.ranks.map((r) => [r.file, r.scans])),
    notes: [
      ...notes,
      family.sharded
        ? `${family.ranks.length} rank files holding DTensor/ShardedTensor shards: consolidated from each shard's placement`
        : `${family.ranks.length} rank files of a data-parallel run: merged when every rank holds the same tensors`,
    ],
    layout: () => {
      const columns: LayoutColumn[] = family.ranks.map((r) => ({ file: r.file, rank: r.rank, bytes: size(r.file), role: 'data' }));
      const byTensor = new Map(family.assemblies.map((a) => [a.tensor, a]));
      const rows = tensorRows(family.merged(0), (t) => {
        const a = byTensor.get(t);
        if (a) {
          const piece = (p: (typeof a.pieces)[number], replica: boolean): LayoutPiece => ({
            column: p.rank,
            offsets: p.offsets,
            sizes: p.sizes,
            bytes: p.source.numel * p.source.dtype.size,
            replica,
          });
          return [...a.pieces.map((p) => piece(p, false)), ...a.replicas.map((p) => piece(p, true))];
        }
        return family.ranks.map((_, i) => wholePiece(t, i, i > 0));
      });
      return {
        kind: family.sharded ? 'sharded-ranks' : 'rank-family',
        title: `${family.ranks.length} rank files${family.sharded ? ' with DTensor/ShardedTensor shards' : ' (data-parallel copies)'}`,
        columns,
        rows,
        items: layoutItems(base.root, 0),
        notes: [...notes],
      };
    },
    close: () => family.close(),
  };
}
