/**
 * Where a rank's shard of a DTensor or ShardedTensor lies in the global tensor, read from the
 * pickled placement metadata alone.
 *
 * DTensor (torch.distributed.tensor) pickles as
 * `_rebuild_from_type_v2(_rebuild_wrapper_subclass, DTensor, (global size/stride/dtype…), state)`
 * with state `{'_local_tensor': …, '_spec': DTensorSpec(mesh, placements, tensor_meta)}` (or
 * `(None, that)`). The offset is computed as torch/distributed/tensor/_utils.py
 * `_compute_local_shape_and_global_offset` does for `Shard`: placements are applied left to right,
 * each splitting the current local size of its dim in `torch.chunk` fashion
 * (placement_types.py `Shard.local_shard_size_and_offset`).
 *
 * ShardedTensor (torch.distributed._shard, FSDP1 SHARDED_STATE_DICT) carries its offsets: the
 * state is `(local_shards, ShardedTensorMetadata, pg state, sharding_spec, …)`, each local
 * `Shard(tensor, ShardMetadata(shard_offsets, shard_sizes, placement))`.
 */
import { fail } from '../errors.ts';
import { PyDict, PyList, PyObject, PyTuple, shapeItems, type PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';

export interface LocalShard {
  offsets: number[];
  sizes: number[];
  tensor: TorchTensor;
}

export const DTENSOR = /(^|\.)DTensor$/;
export const SHARDED_TENSOR = /(^|\.)ShardedTensor$/;

export function isShardTensor(v: PyValue | undefined): v is TorchTensor {
  return v instanceof TorchTensor && isShard(v);
}

/** A DTensor or ShardedTensor (one rank's part of a global tensor). */
export function isShard(t: TorchTensor): boolean {
  return !!t.subclass && (DTENSOR.test(t.subclass) || SHARDED_TENSOR.test(t.subclass));
}

function stateDict(v: PyValue | undefined): PyDict | null {
  if (v instanceof PyDict) return v;
  if (v instanceof PyTuple && v.items.length === 2 && v.items[1] instanceof PyDict) return v.items[1];
  if (v instanceof PyObject) return stateDict(v.state);
  return null;
}

function intList(v: PyValue | undefined): number[] | null {
  const items = shapeItems(v);
  return items && items.every((x) => typeof x === 'number') ? (items as number[]) : null;
}

/** The local shards this rank's file holds for one DTensor or ShardedTensor, in global coordinates. */
export function localShards(t: TorchTensor, where: string): LocalShard[] {
  return DTENSOR.test(t.subclass ?? '') ? [dtensorShard(t, where)] : shardedTensorShards(t, where);
}

function dtensorShard(t: TorchTensor, where: string): LocalShard {
  const bad = (why: string): never => fail('unsupported', `${where}: DTensor ${why}`);
  const st = stateDict(t.pyState);
  const local = st?.get('_local_tensor');
  const spec = stateDict(st?.get('_spec') as PyValue);
  if (!(local instanceof TorchTensor) || !spec) return bad('state has no _local_tensor and _spec');
  const mesh = stateDict(spec.get('mesh'));
  const placements = spec.get('placements');
  if (!mesh || !(placements instanceof PyTuple || placements instanceof PyList)) return bad('spec has no mesh and placements');
  const coord = intList(mesh.get('_coordinate_on_dim'));
  if (!coord) return bad('mesh does not say where this rank sits (_coordinate_on_dim); this rank is not part of the mesh');
  // mesh dim sizes: torch ≥ 2.9 keeps a `_layout` of flat layouts, older versions the `mesh` rank tensor
  let sizes: number[] | null = null;
  const meshTensor = mesh.get('mesh');
  if (meshTensor instanceof TorchTensor) sizes = meshTensor.shape;
  else {
    const axes = stateDict(mesh.get('_layout'))?.get('axes');
    if (axes instanceof PyTuple || axes instanceof PyList) {
      sizes = axes.items.map((a) => {
        const shape = stateDict(a)?.get('shape');
        const flat = (v: PyValue | undefined): number =>
          typeof v === 'number' ? v : v instanceof PyTuple || v instanceof PyList ? v.items.reduce<number>((acc, x) => acc * flat(x), 1) : NaN;
        return flat(shape);
      });
    }
  }
  if (!sizes || sizes.some((n) => !Number.isInteger(n) || n < 1) || sizes.length !== placements.items.length || coord.length !== sizes.length) {
    return bad(`mesh shape [${sizes ?? '?'}] does not match its ${placements.items.length} placements`);
  }
  const offsets = t.shape.map(() => 0);
  const local_ = [...t.shape];
  placements.items.forEach((p, meshDim) => {
    const cls = p instanceof PyObject ? p.className.split('.').pop()! : '';
    if (cls === 'Replicate') return;
    if (cls === 'Shard') {
      const dim = stateDict(p)?.get('dim');
      if (typeof dim !== 'number' || dim < 0 || dim >= t.shape.length) return bad(`Shard placement names dim ${String(dim)} of a ${t.shape.length}-d tensor`);
      const n = sizes![meshDim]!;
      const c = coord[meshDim]!;
      const cur = local_[dim]!;
      const full = cur % n === 0 ? cur / n : Math.ceil(cur / n);
      const start = Math.min(cur, full * c);
      const end = Math.min(cur, full * c + full);
      offsets[dim]! += start;
      local_[dim] = Math.max(0, end - start);
      return;
    }
    if (cls === 'Partial')
      return bad('has a Partial placement: its ranks hold partial sums, which only a reduction across ranks (full_tensor() in torch) can combine');
    return bad(`placement ${p instanceof PyObject ? p.className : typeof p} is not supported (only Shard and Replicate)`);
  });
  if (String(local.shape) !== String(local_)) bad(`local tensor has shape [${local.shape}] but its placements give [${local_}] at offset [${offsets}]`);
  return { offsets, sizes: local_, tensor: local };
}

function shardedTensorShards(t: TorchTensor, where: string): LocalShard[] {
  const bad = (why: string): never => fail('unsupported', `${where}: ShardedTensor ${why}`);
  const st = t.pyState;
  const list = st instanceof PyTuple ? st.items[0] : undefined;
  if (!(list instanceof PyList)) return bad('state has no list of local shards');
  return list.items.map((s, i) => {
    const a = stateDict(s);
    const tensor = a?.get('tensor');
    const md = stateDict(a?.get('metadata') as PyValue);
    const offsets = intList(md?.get('shard_offsets'));
    const sizes = intList(md?.get('shard_sizes'));
    if (!(tensor instanceof TorchTensor) || !offsets || !sizes) return bad(`local shard ${i} has no tensor, shard_offsets and shard_sizes`);
    if (String(tensor.shape) !== String(sizes)) bad(`local shard ${i} holds shape [${tensor.shape}] but its metadata says [${sizes}]`);
    return { offsets, sizes, tensor };
  });
}
