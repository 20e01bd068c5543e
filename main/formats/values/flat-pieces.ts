import { crc32Combine } from '../../io/crc32-combine.ts';
import type { AssembledSource } from './tensor-source.ts';

/**
 * For a tensor assembled from flat slices (DeepSpeed's partitions: 1-D pieces tiling it in
 * order), the CRC-32 the whole tensor must have: its pieces' CRCs, as their source bytes were read,
 * combined in offset order. Compared with the CRC of the tensor read back from the written file,
 * it proves every slice landed at its offset without cutting the slices out of the file again.
 * Null when the assembly is not flat or a piece was not read in one in-order pass.
 */
export function combinedPieceCrc(a: AssembledSource): number | null {
  if (a.shape.length !== 1) return null;
  const es = a.dtype.size;
  const order = a.pieces.map((p, k) => ({ p, k })).sort((x, y) => x.p.offsets[0]! - y.p.offsets[0]!);
  let crc = 0;
  let pos = 0;
  for (const { p, k } of order) {
    const c = a.pieceCrc(k);
    if (c === undefined || p.offsets[0] !== pos) return null;
    crc = crc32Combine(crc, c, p.sizes[0]! * es);
    pos += p.sizes[0]!;
  }
  return pos === a.numel ? crc : null;
}
