// Shared pieces of the re-shard tests. Not a test file itself.
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReshardReport, ReshardRequest } from '../../../shared/reshard.ts';
import { walkTensors } from '../../../main/checkpoint/tree.ts';
import { isDcpFolder, readDcpFolder } from '../../../main/formats/dcp/dcp.ts';
import type { FormatReading } from '../../../main/formats/values/format-reading.ts';
import { openFormat } from '../../../main/formats/open-format.ts';
import type { PyValue } from '../../../main/formats/values/python-values.ts';
import { streamSource, ViewSource } from '../../../main/formats/values/tensor-source.ts';
import type { TorchTensor } from '../../../main/formats/values/torch-values.ts';
import { sourceOf } from '../../../main/formats/values/virtual-tensor.ts';
import { reshard } from '../../../main/reshard/run-reshard.ts';

export const FIX = new URL('../../fixtures/', import.meta.url).pathname;
export const fx = (p: string): string => join(FIX, p);

export function tmp(prefix = 'ckpt-reshard-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** sha256 of a tensor's elements in row-major order (the bytes `t.contiguous().numpy().tobytes()` gives). */
export function sha(t: TorchTensor): string {
  const h = createHash('sha256');
  streamSource((t.storage && sourceOf(t.storage)) ?? new ViewSource(t), (c) => h.update(c));
  return h.digest('hex');
}

export interface TensorFacts {
  dtype: string;
  shape: number[];
  sha256: string;
}

/** Every tensor of a checkpoint (file, index or DCP folder) by its path joined with '/'. */
export function tensorsOf(input: string | FormatReading): Map<string, TensorFacts> {
  const reading = typeof input === 'string' ? (isDcpFolder(input) ? readDcpFolder(input) : openFormat(input)) : input;
  try {
    return tensorsIn(reading.root);
  } finally {
    if (typeof input === 'string') reading.close();
  }
}

export function tensorsIn(root: PyValue): Map<string, TensorFacts> {
  return new Map(walkTensors(root).map(({ path, tensor }) => [path.join('/'), { dtype: tensor.dtype.name, shape: tensor.shape, sha256: sha(tensor) }]));
}

export function request(inputs: string[], over: Partial<ReshardRequest> & Pick<ReshardRequest, 'target' | 'output'>): ReshardRequest {
  return { inputs, format: 'torch', force: false, preset: null, takeRank: null, dryRun: false, ...over };
}

export function run(inputs: string[], over: Partial<ReshardRequest> & Pick<ReshardRequest, 'target' | 'output'>): Promise<ReshardReport> {
  return reshard(request(inputs, over));
}

/** A one-line reason when a report did not write a verified output. */
export function why(r: ReshardReport): string {
  return [...r.plan.errors, ...r.outputs.filter((o) => !o.verified).map((o) => o.mismatch ?? ''), ...r.differing.map((d) => `${d.name}: ${d.reason}`)].join(
    '; ',
  );
}
