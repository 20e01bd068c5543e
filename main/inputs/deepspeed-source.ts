/**
 * A DeepSpeed ZeRO folder as a re-shard input: one checkpoint (zero_to_fp32's state dict, lazy),
 * and its layout for the plan and the view: one column per rank's optimizer-states file (plus the
 * model-states files), each trainable param's slices placed by their offset in the flat tensor.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LayoutColumn, LayoutPiece, LayoutRow } from '../../shared/reshard.ts';
import { readDeepSpeedFolder, type DeepSpeedReading } from '../formats/deepspeed/read-deepspeed.ts';
import { asCheckpointError } from '../errors.ts';
import { layoutItems, type ReshardSource } from './sources.ts';

const size = (f: string): number => {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
};

export function deepSpeedSource(folder: string): ReshardSource {
  let reading: DeepSpeedReading;
  try {
    reading = readDeepSpeedFolder(folder);
  } catch (e) {
    throw asCheckpointError(e, folder);
  }
  const z = reading.zero;
  const files = [...z.optimFiles, ...z.modelFiles];
  return {
    kind: 'deepspeed',
    name: folder,
    files,
    family: null,
    reading,
    root: () => reading.root,
    bytes: files.reduce((a, f) => a + size(f), 0),
    notes: [...reading.notes],
    pickleScans: reading.pickleScans,
    layout: () => {
      const columns: LayoutColumn[] = [
        ...z.optimFiles.map((f, r): LayoutColumn => ({ file: f, rank: r, bytes: size(f), role: 'data' })),
        ...z.modelFiles.map((f, r): LayoutColumn => ({ file: f, rank: z.stage === 3 ? r : null, bytes: size(f), role: 'data' })),
      ];
      const optimCol = new Map(z.optimFiles.map((f, i) => [path.basename(f), i]));
      const modelCol = new Map(z.modelFiles.map((f, i) => [path.basename(f), z.optimFiles.length + i]));
      const rows: LayoutRow[] = reading.entries.map((e) => {
        const t = e.tensor;
        const es = t.dtype.size;
        const pieces: LayoutPiece[] = e.pieces.length
          ? e.pieces.map((p) => ({
              column: optimCol.get(p.label) ?? modelCol.get(p.label) ?? 0,
              offsets: p.offsets,
              sizes: p.sizes,
              bytes: p.sizes[0]! * es,
              replica: false,
            }))
          : [{ column: z.optimFiles.length, offsets: t.shape.map(() => 0), sizes: t.shape, bytes: t.nbytes, replica: e.kind === 'alias' }];
        const spread = new Set(pieces.map((p) => p.column)).size > 1 ? 'sharded' : 'whole';
        // slices of a flat partition are placed along the param seen flat (its numel), as the view draws offsets per dim
        return { name: e.name, path: [e.name], dtype: t.dtype.name, shape: e.pieces.length ? [t.numel] : t.shape, bytes: t.nbytes, pieces, spread };
      });
      const title = `DeepSpeed ZeRO-${z.stage}, ${z.worldSize} ranks, ${z.precision}, tag ${z.tag}: pieces are slices of each rank's flat fp32 partition`;
      return { kind: 'deepspeed', title, columns, rows, items: z.lightning ? layoutItems(reading.root, z.optimFiles.length) : [], notes: [...reading.notes] };
    },
    close: () => reading.close(),
  };
}
