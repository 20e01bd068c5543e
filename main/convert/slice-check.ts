import { rootStorage } from '../checkpoint/inspect.ts';
import { walkTensors, type TensorAt } from '../checkpoint/tree.ts';
import { combinedPieceCrc } from '../formats/values/flat-pieces.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import { assemblyOf } from '../formats/values/virtual-tensor.ts';
import type { OutputResult } from './read-back-match.ts';
import { hex } from './tensor-checks.ts';

/**
 * Tensors assembled from flat slices (a DeepSpeed folder's params) checked against their source
 * slices: the slices' CRCs, combined in offset order, must equal the tensor's CRC read back from
 * the written file. Marks the first tensor that fails; returns the number of slices checked.
 */
export function checkFlatSlices(tree: PyValue, report: OutputResult, tensors: TensorAt[] = walkTensors(tree)): number {
  const { checks } = report;
  // built at the first assembled tensor: most conversions have none, and 500,000 path keys cost seconds
  let byPath: Map<string, number> | null = null;
  let slices = 0;
  for (const { path, tensor } of tensors) {
    const a = tensor.storage ? assemblyOf(rootStorage(tensor.storage)) : undefined;
    if (!a || tensor.storageOffset !== 0) continue;
    byPath ??= new Map(Array.from({ length: checks.length }, (_, i) => [JSON.stringify(checks.path(i)), i]));
    const i = byPath.get(JSON.stringify(path));
    const crc = i === undefined ? null : checks.crc(i);
    if (i === undefined || crc === null) continue;
    const combined = combinedPieceCrc(a);
    if (combined === null) continue;
    slices += a.pieces.length;
    if (combined !== crc && checks.ok(i)) {
      const problem = `its ${a.pieces.length} source slices have combined crc32 ${hex(combined)}, the tensor reads back with ${hex(crc)}`;
      checks.fail(i, problem);
      report.verified = false;
      report.mismatch ??= `${JSON.stringify(path)}: ${problem}`;
    }
  }
  return slices;
}
