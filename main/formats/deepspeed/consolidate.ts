/**
 * The state dict deepspeed/utils/zero_to_fp32.py `get_fp32_state_dict_from_zero_checkpoint`
 * returns, as lazy tensors: each parameter is assembled from its slices of the per-rank flat fp32
 * partitions only when the writer streams it, so memory stays bounded by the largest tensor.
 *
 * Order and content, as `_get_fp32_state_dict_from_zero{2,3}_checkpoint` builds them:
 * 1. buffers: `module` entries named in `buffer_names`, in `module` order, each `.float()`;
 * 2. frozen params (unless exclude_frozen_parameters), in `frozen_param_shapes` order, in their
 *    saved dtype: ZeRO 2 stores the whole tensor, ZeRO 3 one padded slice per rank
 *    (`torch.cat(frags).narrow(0, 0, numel).view(shape)`);
 * 3. trainable params in `param_shapes` order:
 *    - ZeRO 1/2 (`_zero2_merge_trainable_params`): per group, the ranks' partitions concatenated,
 *      then consecutive `numel` slices; consumed and available counts must agree after rounding
 *      both up to a multiple of 2·world_size;
 *    - ZeRO 3 (`_zero3_merge_trainable_params`, `GatheredTensor`): each rank's groups
 *      concatenated; every param takes ceil(numel/ws) elements per rank at a running offset, the
 *      ranks' pieces in rank order cut to numel (the padding is never read);
 * 4. `shared_params` aliases: the owner's tensor under the alias's name (one tensor, two keys).
 * The result is a plain dict (`to_torch_tensor` builds `{}`), every tensor contiguous on cpu.
 */
import { dtypeByName } from '../../../shared/dtypes.ts';
import { CastSource } from '../values/dtype-cast.ts';
import { fail } from '../../errors.ts';
import { PyDict } from '../values/python-values.ts';
import { AssembledSource, BoxSource, ViewSource, numelOf, type Piece, type TensorSource } from '../values/tensor-source.ts';
import type { TorchTensor } from '../values/torch-values.ts';
import { plainTensor, sourceStorage } from '../values/virtual-tensor.ts';
import type { ModelStates, OptimStates } from './zero-states.ts';
import * as path from 'node:path';

export type EntryKind = 'buffer' | 'frozen' | 'trainable' | 'alias';

export interface ConsolidatedEntry {
  name: string;
  kind: EntryKind;
  tensor: TorchTensor;
  /** trainable and ZeRO-3 frozen params: the per-rank slices the tensor is assembled from */
  pieces: (Piece & { rank: number; at: number })[];
  /** param group, for trainable params */
  group: number | null;
  /** for aliases: the owner */
  aliasOf?: string;
}

export interface Consolidated {
  root: PyDict;
  entries: ConsolidatedEntry[];
}

/** One run of elements a rank holds: a flat tensor (or its prefix). */
interface Segment {
  tensor: TorchTensor;
  source: TensorSource;
  length: number;
  rank: number;
  label: string;
}

/** Elements [start, start + count) of segments laid end to end, as pieces placed at `placeAt` of a flat tensor. */
function slicePieces(segments: Segment[], start: number, count: number, placeAt: number, what: string): (Piece & { rank: number; at: number })[] {
  const pieces: (Piece & { rank: number; at: number })[] = [];
  let segStart = 0;
  let need = count;
  let pos = start;
  let place = placeAt;
  for (const s of segments) {
    if (need === 0) break;
    const segEnd = segStart + s.length;
    if (pos < segEnd) {
      const off = pos - segStart;
      const n = Math.min(need, s.length - off);
      pieces.push({ offsets: [place], sizes: [n], source: new BoxSource(s.source, [off], [n]), label: s.label, rank: s.rank, at: off });
      pos += n;
      place += n;
      need -= n;
    }
    segStart = segEnd;
  }
  if (need > 0)
    fail('truncated', `${what}: needs elements up to ${start + count} of the flat partitions, which hold ${segStart}; a rank's optimizer states are short`);
  return pieces;
}

function segment(t: TorchTensor, rank: number, file: string): Segment {
  return { tensor: t, source: new ViewSource(t), length: t.numel, rank, label: path.basename(file) };
}

/** A contiguous cpu tensor of `shape` whose bytes are assembled from `pieces` of a flat tensor. */
function assembled(name: string, shape: number[], pieces: Piece[], dtypeName: string): TorchTensor {
  const dtype = dtypeByName(dtypeName)!;
  const src = new AssembledSource(
    dtype,
    [numelOf(shape)],
    pieces.filter((p) => p.sizes[0]! > 0),
    name,
  );
  return plainTensor(dtype, shape, sourceStorage(name, src, 'cpu'));
}

/** A stored tensor as a contiguous cpu tensor of its own (`.contiguous()` on cpu), cast when asked. */
function copied(name: string, t: TorchTensor, toFloat: boolean): TorchTensor {
  let src: TensorSource = new ViewSource(t);
  if (toFloat && t.dtype.name !== 'float32') {
    const f32 = dtypeByName('float32')!;
    try {
      src = new CastSource(src, f32);
    } catch {
      fail('unsupported', `${name}: a ${t.dtype.name} buffer, which zero_to_fp32's .float() cannot be matched for`);
    }
  }
  return plainTensor(src.dtype, [...t.shape], sourceStorage(name, src, 'cpu'));
}

export function consolidate(models: ModelStates[], optims: OptimStates[], excludeFrozen: boolean): Consolidated {
  const m0 = models[0]!;
  const ws = optims[0]!.worldSize;
  const stage = optims[0]!.stage;
  const entries: ConsolidatedEntry[] = [];
  const root = new PyDict(false);
  const add = (e: ConsolidatedEntry): void => {
    entries.push(e);
    root.set(e.name, e.tensor);
  };

  // 1. buffers
  const buffers = new Set(m0.bufferNames);
  for (const [k, v] of m0.module.entries) {
    if (typeof k !== 'string' || !buffers.has(k)) continue;
    if (!(v as TorchTensor | null)?.storage) fail('not-a-checkpoint', `${path.basename(m0.file)}: buffer ${k} is not a stored tensor`, m0.file);
    add({ name: k, kind: 'buffer', tensor: copied(k, v as TorchTensor, true), pieces: [], group: null });
  }

  // 2. frozen params
  if (!excludeFrozen && m0.frozenShapes && m0.frozenShapes.size) {
    for (const [name, shape] of m0.frozenShapes) {
      const numel = numelOf(shape);
      if (stage <= 2) {
        const t = m0.frozenFragments?.get(name);
        if (!t) fail('not-a-checkpoint', `${path.basename(m0.file)}: frozen param ${name} has no entry in frozen_param_fragments`, m0.file);
        if (t.numel !== numel)
          fail('not-a-checkpoint', `${path.basename(m0.file)}: frozen param ${name} holds ${t.numel} elements, its shape [${shape}] needs ${numel}`, m0.file);
        add({ name, kind: 'frozen', tensor: plainTensor(t.dtype, shape, sourceStorage(name, new ViewSource(t), 'cpu')), pieces: [], group: null });
        continue;
      }
      const per = Math.ceil(numel / ws);
      const pieces: (Piece & { rank: number; at: number })[] = [];
      let dtype = '';
      models.forEach((m, r) => {
        const frag = m.frozenFragments?.get(name);
        if (!frag) fail('not-a-checkpoint', `${path.basename(m.file)}: frozen param ${name} has no fragment for rank ${r}`, m.file);
        dtype ||= frag.dtype.name;
        const n = Math.max(0, Math.min(per, numel - r * per));
        if (frag.numel < n)
          fail('truncated', `${path.basename(m.file)}: the fragment of frozen param ${name} holds ${frag.numel} elements, rank ${r} needs ${n}`, m.file);
        if (n > 0)
          pieces.push({ offsets: [r * per], sizes: [n], source: new BoxSource(new ViewSource(frag), [0], [n]), label: path.basename(m.file), rank: r, at: 0 });
      });
      add({ name, kind: 'frozen', tensor: assembled(name, shape, pieces, dtype), pieces, group: null });
    }
  }

  // 3. trainable params (fp32)
  const nGroups = optims[0]!.flatGroups.length;
  for (const o of optims) {
    if (o.flatGroups.length !== nGroups)
      fail('not-a-checkpoint', `${path.basename(o.file)}: ${o.flatGroups.length} flat fp32 groups, rank 0 has ${nGroups}`, o.file);
    for (const t of o.flatGroups) if (t.dtype.name !== 'float32') fail('unsupported', `${path.basename(o.file)}: a flat fp32 group is ${t.dtype.name}`, o.file);
  }
  if (stage <= 2) {
    if (m0.paramShapes.length !== nGroups)
      fail('not-a-checkpoint', `${path.basename(m0.file)}: param_shapes has ${m0.paramShapes.length} groups, the optimizer states ${nGroups}`, m0.file);
    const align = (x: number): number => 2 * ws * Math.ceil(x / (2 * ws));
    m0.paramShapes.forEach((shapes, g) => {
      const segments = optims.map((o, r) => segment(o.flatGroups[g]!, r, o.file));
      const avail = segments.reduce((a, s) => a + s.length, 0);
      let offset = 0;
      for (const [name, shape] of shapes) {
        const numel = numelOf(shape);
        const pieces = slicePieces(segments, offset, numel, 0, name);
        add({ name, kind: 'trainable', tensor: assembled(name, shape, pieces, 'float32'), pieces, group: g });
        offset += numel;
      }
      // zero_to_fp32's sanity check, padding allowed up to the 2·world_size alignment
      if (align(offset) !== align(avail))
        fail(
          'not-a-checkpoint',
          `param group ${g}: its params need ${offset} elements but the ranks' partitions hold ${avail}; the model and optimizer states do not belong together`,
        );
    });
  } else {
    const segmentsOf = optims.map((o, r) => o.flatGroups.map((t) => segment(t, r, o.file)));
    const avail = segmentsOf[0]!.reduce((a, s) => a + s.length, 0);
    for (const [r, segs] of segmentsOf.entries()) {
      const n = segs.reduce((a, s) => a + s.length, 0);
      if (n !== avail)
        fail(
          'not-a-checkpoint',
          `${path.basename(optims[r]!.file)}: holds ${n} fp32 elements, rank 0 holds ${avail}; every ZeRO-3 rank holds the same padded count`,
          optims[r]!.file,
        );
    }
    let offset = 0;
    m0.paramShapes.forEach((shapes, g) => {
      for (const [name, shape] of shapes) {
        const numel = numelOf(shape);
        const per = Math.ceil(numel / ws);
        const pieces: (Piece & { rank: number; at: number })[] = [];
        for (let r = 0; r < ws; r++) {
          const n = Math.max(0, Math.min(per, numel - r * per));
          if (n > 0) pieces.push(...slicePieces(segmentsOf[r]!, offset, n, r * per, name));
          else slicePieces(segmentsOf[r]!, offset, per, r * per, name); // the slot must exist even when all padding
        }
        add({ name, kind: 'trainable', tensor: assembled(name, shape, pieces, 'float32'), pieces, group: g });
        offset += per;
      }
    });
    if (offset !== avail)
      fail(
        'not-a-checkpoint',
        `ZeRO-3 params consume ${offset * ws} elements but the ranks hold ${avail * ws}; the model and optimizer states do not belong together`,
      );
  }

  // 4. aliases
  for (const [alias, owner] of m0.sharedParams) {
    const t = root.get(owner);
    if (t === undefined) continue;
    const ownerEntry = entries.find((e) => e.name === owner)!;
    add({ name: alias, kind: 'alias', tensor: ownerEntry.tensor, pieces: [], group: null, aliasOf: owner });
  }
  return { root, entries };
}
