import type { CastDtype } from '../../shared/presets.ts';
import { parseCastDtype } from '../convert/cast-tree.ts';
import { fail } from '../errors.ts';
import { regexError } from '../../shared/presets.ts';

/** `--dtype D [--keep-dtype RE]` as rules fields, checked (convert and reshard). */
export function castOptions(dtype: string | undefined, keep: string | undefined): { castTo?: CastDtype; keepDtype?: string } {
  if (dtype === undefined) {
    if (keep !== undefined) fail('usage', '--keep-dtype goes with --dtype');
    return {};
  }
  const castTo = parseCastDtype(dtype);
  if (!['float32', 'bfloat16', 'float16'].includes(castTo)) fail('usage', castTo);
  if (keep !== undefined && regexError(keep)) fail('usage', `--keep-dtype: ${regexError(keep)}`);
  return { castTo: castTo as CastDtype, ...(keep !== undefined ? { keepDtype: keep } : {}) };
}
