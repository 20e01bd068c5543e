/**
 * `--dtype fp32|bf16|fp16` for convert and reshard: every floating tensor of the output tree
 * becomes a virtual tensor whose bytes are its source's cast exactly as torch's `.to(dtype)` casts
 * (main/formats/dtype-cast.ts); integer, bool, complex and float8 tensors are left as they are, and
 * so are tensors whose dotted name matches `--keep-dtype RE`. A tensor reachable by two paths
 * (tied weights) stays one tensor. The writer streams the cast bytes and the verification compares
 * what it reads back with them, so each output tensor is checked against the cast of its source.
 */
import type { CastDtype, CastSummary } from '../../shared/presets.ts';
import { dtypeByName } from '../../shared/dtypes.ts';
import { walkTensors } from '../checkpoint/tree.ts';
import { CASTABLE_FLOATS, CastSource } from '../formats/values/dtype-cast.ts';
import { fail } from '../errors.ts';
import type { PyValue } from '../formats/values/python-values.ts';
import { TorchTensor } from '../formats/values/torch-values.ts';
import { plainTensor, sourceStorage } from '../formats/values/virtual-tensor.ts';
import { dottedName, replaceTensors } from '../checkpoint/replace-tensors.ts';
import { tensorSource } from '../formats/values/reshaped-source.ts';

export interface CastRequest {
  castTo?: CastDtype | null;
  keepDtype?: string | null;
}

export interface CastTree {
  tree: PyValue;
  /** summary of the casts so far (counts grow as the writer streams the tensors) */
  summary(): CastSummary | null;
}

/** `fp32`, `bf16`, `fp16` and torch's names → the dtype `--dtype` casts to. */
export function parseCastDtype(text: string): CastDtype | string {
  const t = text.trim().toLowerCase();
  const names: Record<string, CastDtype> = {
    fp32: 'float32',
    float32: 'float32',
    float: 'float32',
    bf16: 'bfloat16',
    bfloat16: 'bfloat16',
    fp16: 'float16',
    float16: 'float16',
    half: 'float16',
  };
  return names[t] ?? `--dtype ${JSON.stringify(text)}: give fp32, bf16 or fp16`;
}

export function castTree(root: PyValue, req: CastRequest): CastTree {
  if (!req.castTo) return { tree: root, summary: () => null };
  const to = dtypeByName(req.castTo)!;
  let keep: RegExp | null = null;
  try {
    keep = req.keepDtype ? new RegExp(req.keepDtype) : null;
  } catch (e) {
    fail('usage', `--keep-dtype ${JSON.stringify(req.keepDtype)}: ${(e as Error).message}`);
  }
  const names = new Map<TorchTensor, string>();
  for (const { path, tensor } of walkTensors(root)) if (!names.has(tensor)) names.set(tensor, dottedName(path));
  const casts: CastSource[] = [];
  let kept = 0;
  let unchanged = 0;
  const replaced = new Map<TorchTensor, TorchTensor>();
  const tree = replaceTensors(root, (t) => {
    const done = replaced.get(t);
    if (done) return done;
    let out = t;
    const castable = t.storage && (t.kind === 'dense' || t.kind === 'parameter') && CASTABLE_FLOATS.has(t.dtype.name);
    if (castable && t.dtype.name === to.name) unchanged++;
    else if (castable && keep?.test(names.get(t) ?? '')) kept++;
    else if (castable) {
      const src = new CastSource(tensorSource(t), to);
      casts.push(src);
      out = plainTensor(to, [...t.shape], sourceStorage(names.get(t) ?? 'cast', src, t.storage!.location), t.requiresGrad);
      out.isParameter = t.isParameter;
    }
    replaced.set(t, out);
    return out;
  });
  return {
    tree,
    summary: () => ({
      dtype: to.name as CastDtype,
      cast: casts.length,
      kept,
      unchanged,
      overflow: casts.reduce((a, c) => a + c.counts.overflow, 0),
      underflow: casts.reduce((a, c) => a + c.counts.underflow, 0),
    }),
  };
}
