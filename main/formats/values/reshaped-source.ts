import { fail } from '../../errors.ts';
import { numelOf, ViewSource, type TensorSource } from './tensor-source.ts';
import type { TorchTensor } from './torch-values.ts';
import { sourceOf } from './virtual-tensor.ts';

/**
 * Another source's row-major elements under another shape of the same numel (`view(shape)` of a
 * contiguous tensor): how a parameter assembled from flat slices (DeepSpeed's flat partitions) is
 * compared, piece by piece, with the written tensor.
 */
export class ReshapedSource implements TensorSource {
  readonly numel: number;
  constructor(
    readonly base: TensorSource,
    readonly shape: readonly number[],
  ) {
    this.numel = numelOf(shape);
    if (this.numel !== base.numel) fail('internal', `cannot view ${base.numel} elements as [${shape}]`);
  }
  get dtype(): TensorSource['dtype'] {
    return this.base.dtype;
  }
  describe(): string {
    return `${this.base.describe()} viewed as [${this.shape}]`;
  }
  readElements(first: number, count: number, out: Uint8Array, outAt: number): void {
    this.base.readElements(first, count, out, outAt);
  }
}

/**
 * The bytes of a tensor, as a source: its virtual assembly (in the tensor's own shape: a param
 * assembled flat from DeepSpeed's partitions is viewed as its shape) or its view of a storage on disk.
 */
export function tensorSource(t: TorchTensor): TensorSource {
  const virtual = t.storage && sourceOf(t.storage);
  if (!virtual) return new ViewSource(t);
  return String(virtual.shape) === String(t.shape) ? virtual : new ReshapedSource(virtual, t.shape);
}
