/**
 * Per-rank families: the files one distributed run saved, one per rank. Either every rank holds a
 * full copy (DDP: merged after checking the copies are identical, tensor by tensor, by hash), or
 * each holds DTensor / ShardedTensor shards (FSDP SHARDED_STATE_DICT: consolidated into full
 * tensors from each shard's placement metadata, while replicated parts are checked like copies).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { TensorDifference } from '../../shared/reshard.ts';
import { childrenOf, walkTensors } from '../checkpoint/tree.ts';
import { groupFamilies } from './discover.ts';
import { asCheckpointError, fail } from '../errors.ts';
import type { FormatReading } from '../formats/values/format-reading.ts';
import { openFormat } from '../formats/open-format.ts';
import { PrescannedPickles } from '../formats/torch/torch-zip.ts';
import { PyBytes, PyFloat, PyGlobal, PyObject, type PyValue } from '../formats/values/python-values.ts';
import { AssembledSource, ViewSource, streamSource, type Piece } from '../formats/values/tensor-source.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { sourceTensor } from '../formats/values/virtual-tensor.ts';
import { isShard, isShardTensor, localShards } from './placements.ts';
import { dottedName, replaceTensors } from '../checkpoint/replace-tensors.ts';

export interface RankFile {
  file: string;
  rank: number;
  reading: FormatReading;
  /** the security scans of the pickles its reader walked, for the file's scan to reuse (`scanFile`) */
  scans: PrescannedPickles;
}

/** One consolidated tensor: its pieces (one per distinct box) and the boxes other ranks repeat. */
export interface Assembly {
  path: (string | number)[];
  name: string;
  tensor: TorchTensor;
  pieces: (Piece & { rank: number })[];
  replicas: (Piece & { rank: number; of: number })[];
}

/**
 * Orders files by the rank in their names (`rank3.pt`, `model_rank_3.pth`, `shard-3.bin`,
 * `weights_3.pt`, as the folder converter groups them); files whose names carry no contiguous
 * ranks keep the order given, rank = position.
 */
export function rankOrder(files: string[]): { file: string; rank: number }[] {
  const groups = groupFamilies(files);
  if (groups.length === 1 && groups[0]!.family && groups[0]!.files.length === files.length) return groups[0]!.files.map((file, rank) => ({ file, rank }));
  return files.map((file, rank) => ({ file, rank }));
}

export class Family {
  readonly sharded: boolean;
  readonly assemblies: Assembly[] = [];
  /** per rank: every tensor by its path (JSON), in walk order */
  private readonly byPath: Map<string, TorchTensor>[];
  private constructor(readonly ranks: RankFile[]) {
    this.byPath = ranks.map((r) => new Map(walkTensors(r.reading.root).map((t) => [JSON.stringify(t.path), t.tensor])));
    this.sharded = this.byPath.some((m) => [...m.values()].some(isShard));
    if (this.sharded) this.consolidate();
  }

  /**
   * Opens every rank file. `opened`: one of them read already (the file the user named, found to
   * hold shards), taken over instead of read again; the family closes it, whatever happens.
   */
  static open(files: string[], opened?: Omit<RankFile, 'rank'>): Family {
    const ranks: RankFile[] = [];
    /** `opened` until it is a rank here or closed */
    let unclaimed = opened;
    try {
      if (files.length < 2) fail('usage', 'a rank family needs at least two files');
      for (const { file, rank } of rankOrder(files)) {
        if (unclaimed && path.resolve(file) === path.resolve(unclaimed.file)) {
          ranks.push({ ...unclaimed, file, rank });
          unclaimed = undefined;
          continue;
        }
        const scans = new PrescannedPickles();
        ranks.push({ file, rank, reading: openFormat(file, { scans }), scans });
      }
      return new Family(ranks);
    } catch (e) {
      for (const r of ranks) r.reading.close();
      throw asCheckpointError(e);
    } finally {
      unclaimed?.reading.close();
    }
  }

  close(): void {
    for (const r of this.ranks) r.reading.close();
  }

  /** The tensor a rank holds at a path, if any. */
  private at(r: RankFile, p: (string | number)[]): TorchTensor | undefined {
    return this.byPath[this.ranks.indexOf(r)]!.get(JSON.stringify(p));
  }

  /** Builds the consolidated tensors: the union of every rank's shards at each shard path of rank 0. */
  private consolidate(): void {
    const base = this.ranks[0]!;
    const done = new Set<TorchTensor>();
    for (const { path: p, tensor: t } of walkTensors(base.reading.root)) {
      if (!isShardTensor(t) || done.has(t)) continue;
      done.add(t);
      const name = dottedName(p);
      const pieces: Assembly['pieces'] = [];
      const replicas: Assembly['replicas'] = [];
      for (const r of this.ranks) {
        const v = this.at(r, p);
        const where = `${path.basename(r.file)}: ${name}`;
        const what = v ? 'a plain tensor' : 'missing';
        if (!isShardTensor(v)) fail('not-a-checkpoint', `${where} is ${what} but rank ${base.rank} holds a ${t.subclass!.split('.').pop()} there`, r.file);
        if (String(v.shape) !== String(t.shape) || v.dtype.name !== t.dtype.name)
          fail('not-a-checkpoint', `${where} is ${v.dtype.name} [${v.shape}] but ${t.dtype.name} [${t.shape}] on rank ${base.rank}`, r.file);
        for (const s of localShards(v, where)) {
          if (s.sizes.some((d) => d === 0)) continue; // an empty shard of an uneven split
          const piece = { offsets: s.offsets, sizes: s.sizes, source: new ViewSource(s.tensor), label: path.basename(r.file), rank: r.rank };
          const same = pieces.findIndex((x) => String(x.offsets) === String(s.offsets) && String(x.sizes) === String(s.sizes));
          if (same >= 0) replicas.push({ ...piece, of: same });
          else pieces.push(piece);
        }
      }
      const local = localShards(t, name)[0]?.tensor;
      const source = new AssembledSource(t.dtype, t.shape, pieces, name);
      const full = sourceTensor(name, source, local?.device ?? 'cpu', t.requiresGrad);
      this.assemblies.push({ path: p, name, tensor: full, pieces, replicas });
    }
  }

  /**
   * The one checkpoint the family stands for: rank `take`'s tree (rank 0 by default) with every
   * DTensor / ShardedTensor replaced by its consolidated full tensor.
   */
  merged(take = 0): PyValue {
    const r = this.ranks.find((x) => x.rank === take);
    if (!r) fail('usage', `--take-rank ${take}: the family has ranks 0 to ${this.ranks.length - 1}`);
    if (!this.sharded) return r.reading.root;
    const byObject = new Map<TorchTensor, TorchTensor>();
    for (const a of this.assemblies) {
      const v = this.at(r, a.path);
      if (v) byObject.set(v, a.tensor);
    }
    return replaceTensors(r.reading.root, (t) => byObject.get(t) ?? t);
  }

  /** Bytes `compare` reads. */
  compareBytes(): number {
    const plain = this.ranks.reduce(
      (a, r) =>
        a +
        walkTensors(r.reading.root)
          .filter((t) => !isShard(t.tensor) && t.tensor.storage)
          .reduce((b, t) => b + t.tensor.nbytes, 0),
      0,
    );
    const reps = this.assemblies.reduce((a, x) => a + x.replicas.reduce((b, p) => b + 2 * p.source.numel * p.source.dtype.size, 0), 0);
    return plain + reps;
  }

  /**
   * What is not the same on every rank: plain tensors compared by sha256 of their bytes (and
   * dtype, shape, presence), non-tensor values by content, and, for sharded families, the pieces
   * several ranks hold of the same box (Replicate placements).
   */
  compare(onBytes: (n: number) => void = () => {}, checkCancelled?: () => void): TensorDifference[] {
    const diffs: TensorDifference[] = [];
    const hash = (t: TorchTensor | Piece['source']): string => {
      const h = createHash('sha256');
      streamSource(
        t instanceof TorchTensor ? new ViewSource(t) : t,
        (c) => {
          h.update(c);
          onBytes(c.length);
        },
        checkCancelled,
      );
      return h.digest('hex');
    };
    const n = this.ranks.length;
    const seenPaths = new Set<string>();
    for (let k = 0; k < n; k++) {
      for (const [key, t] of this.byPath[k]!) {
        if (isShard(t) || seenPaths.has(key)) continue;
        seenPaths.add(key);
        const p = JSON.parse(key) as (string | number)[];
        const ts = this.ranks.map((r) => this.at(r, p));
        const ref = ts[0];
        const name = dottedName(p);
        const missing = ts.map((t, i) => (t instanceof TorchTensor ? -1 : this.ranks[i]!.rank)).filter((x) => x >= 0);
        if (missing.length) {
          diffs.push({ name, path: p, ranks: missing, reason: `missing on rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')}` });
          continue;
        }
        const tensors = ts as TorchTensor[];
        const shapeDiff = tensors
          .map((t, i) =>
            t.dtype.name !== (ref as TorchTensor).dtype.name || String(t.shape) !== String((ref as TorchTensor).shape) ? this.ranks[i]!.rank : -1,
          )
          .filter((x) => x >= 0);
        if (shapeDiff.length) {
          diffs.push({ name, path: p, ranks: shapeDiff, reason: `dtype or shape differs (${tensors.map((t) => `${t.dtype.name}[${t.shape}]`).join(' vs ')})` });
          continue;
        }
        if (!tensors.every((t) => t.storage)) continue;
        const hashes = tensors.map(hash);
        const differ = hashes.map((h, i) => (h !== hashes[0] ? this.ranks[i]!.rank : -1)).filter((x) => x >= 0);
        if (differ.length) diffs.push({ name, path: p, ranks: differ, reason: 'values differ', hashes });
      }
    }
    for (const a of this.assemblies) {
      for (const r of a.replicas) {
        const of = a.pieces[r.of]!;
        const [h0, h1] = [hash(of.source), hash(r.source)];
        if (h0 !== h1)
          diffs.push({
            name: a.name,
            path: a.path,
            ranks: [r.rank],
            reason: `the shard at [${r.offsets}] is replicated, but rank ${r.rank}'s copy differs from rank ${of.rank}'s`,
            hashes: [h0, h1],
          });
      }
    }
    diffs.push(...this.valueDifferences());
    return diffs;
  }

  /** Non-tensor leaves (epoch, lr, names) that are not equal on every rank. */
  private valueDifferences(): TensorDifference[] {
    const maps = this.ranks.map((r) => leafValues(r.reading.root));
    const keys = new Set(maps.flatMap((m) => [...m.keys()]));
    const diffs: TensorDifference[] = [];
    for (const key of keys) {
      const vals = maps.map((m) => m.get(key));
      const differ = vals.map((v, i) => (v !== vals[0] ? this.ranks[i]!.rank : -1)).filter((x) => x >= 0);
      if (!differ.length) continue;
      const p = JSON.parse(key) as (string | number)[];
      diffs.push({
        name: dottedName(p),
        path: p,
        ranks: differ,
        reason: `value differs (${vals
          .map((v) => v ?? 'missing')
          .join(' vs ')
          .slice(0, 120)})`,
      });
    }
    return diffs;
  }
}

/** Path → a canonical text of every non-tensor leaf value (tensors are compared by hash instead). */
function leafValues(root: PyValue): Map<string, string> {
  const out = new Map<string, string>();
  const onPath = new Set<object>();
  const visit = (v: PyValue, p: (string | number)[]): void => {
    if (v instanceof TorchTensor) return;
    if (v !== null && typeof v === 'object' && !(v instanceof PyGlobal) && !(v instanceof PyFloat) && !(v instanceof PyBytes)) {
      if (onPath.has(v)) return;
      const kids = childrenOf(v);
      if (kids.length) {
        onPath.add(v);
        for (const [k, x] of kids) visit(x, [...p, k]);
        onPath.delete(v);
        return;
      }
    }
    out.set(JSON.stringify(p), leafText(v));
  };
  visit(root, []);
  return out;
}

function leafText(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof PyFloat) return `${v.value}f`;
  if (v instanceof PyBytes) return `b${Buffer.from(v.data).toString('hex').slice(0, 64)}:${v.data.length}`;
  if (v instanceof PyGlobal) return v.fullName;
  if (v instanceof PyObject) return `${v.className}()`;
  return v && typeof v === 'object' ? `${v.constructor.name}(empty)` : String(v);
}

/**
 * Whether the ranks of a per-rank family are copies, so a batch may merge them into one file:
 * every plain tensor equal by hash, every non-tensor value equal, replicated shards equal.
 * Sharded families (FSDP) count as copies here: their shards differ by design and are
 * consolidated when any rank file is converted.
 */
export function compareRanks(files: string[]): { identical: boolean; differing: string[]; tensors: number } {
  const family = Family.open(files);
  try {
    const diffs = family.compare();
    const tensors = walkTensors(family.ranks[0]!.reading.root).length;
    return { identical: diffs.length === 0, differing: diffs.map((d) => d.name), tensors };
  } finally {
    family.close();
  }
}
