import type { OutputReport } from '../../shared/convert.ts';
import { rootStorage } from '../checkpoint/inspect.ts';
import { walkTensors, type TensorAt } from '../checkpoint/tree.ts';
import { combinedPieceCrc } from '../formats/values/flat-pieces.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import { assemblyOf } from '../formats/values/virtual-tensor.ts';

const hex = (n: number): string => n.toString(16).padStart(8, '0');

/**
 * Tensors assembled from flat slices (a DeepSpeed folder's params) checked against their source
 * slices: the slices' CRCs, combined in offset order, must equal the tensor's CRC read back from
 * the written file. Marks the first tensor that fails; returns the number of slices checked.
 */
export function checkFlatSlices(tree: PyValue, report: OutputReport, tensors: TensorAt[] = walkTensors(tree)): number {
  // built at the first assembled tensor: most conversions have none, and 500,000 path keys cost seconds
  let byPath: Map<string, OutputReport['checks'][number]> | null = null;
  let slices = 0;
  for (const { path, tensor } of tensors) {
    const a = tensor.storage ? assemblyOf(rootStorage(tensor.storage)) : undefined;
    if (!a || tensor.storageOffset !== 0) continue;
    byPath ??= new Map(report.checks.map((c) => [JSON.stringify(c.path), c]));
    const check = byPath.get(JSON.stringify(path));
    if (!check?.crc32) continue;
    const combined = combinedPieceCrc(a);
    if (combined === null) continue;
    slices += a.pieces.length;
    if (combined !== parseInt(check.crc32, 16) && check.ok) {
      check.ok = false;
      check.problem = `its ${a.pieces.length} source slices have combined crc32 ${hex(combined)}, the tensor reads back with ${check.crc32}`;
      report.verified = false;
      report.mismatch ??= `${JSON.stringify(path)}: ${check.problem}`;
    }
  }
  return slices;
}
