// The Batch view's dry run: each pending file of the plan is opened and planned as its conversion
// would be (previewConversion, the Convert preview), so a file that will not read is listed as
// failing with its one-line reason before anything runs, and every other file says what the
// conversion would change in it.
import * as path from 'node:path';
import type { BatchPlanItem } from '../../shared/api.ts';
import type { ConversionPlan } from '../../shared/convert.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import { previewConversion } from '../convert/convert-file.ts';
import { asCheckpointError } from '../errors.ts';

/**
 * Checks the pending items of a plan in place: `change` set, or status 'failed' with the reason.
 * `units[i]` is how items[i] is converted (planBatch: its source, and its rules, which differ per
 * rank under the ddp preset).
 */
export function checkPlannedItems(items: BatchPlanItem[], units: readonly { source: string; rules: ConversionRules }[], input: string): void {
  for (const [i, item] of items.entries()) {
    const unit = units[i];
    if (item.status !== 'pending' || !unit) continue;
    const source = path.join(path.resolve(input), unit.source);
    try {
      const plan = previewConversion(source, unit.rules, null);
      if (plan.errors.length) {
        item.status = 'failed';
        item.reason = plan.errors[0]!.replaceAll(source, unit.source);
      } else item.change = describeChange(plan);
    } catch (e) {
      item.status = 'failed';
      item.unreadable = true;
      // named as in the list (relative to the input folder), so the reason fits its row
      item.reason = asCheckpointError(e, source).message.replaceAll(source, unit.source);
    }
  }
}

const s = (n: number): string => (n === 1 ? '' : 's');

/** One line: `16 keys renamed (module. removed) · cuda:0→cpu 16 tensors`, or that nothing changes. */
export function describeChange(plan: ConversionPlan): string {
  const parts: string[] = [];
  let renamed = 0;
  let dropped = 0;
  const removed = new Set<string>();
  const added = new Set<string>();
  for (const sd of plan.stateDicts) {
    for (const k of sd.keys) {
      if (k.to === null) dropped++;
      else if (k.to !== k.from) renamed++;
    }
    for (const p of sd.stripped) removed.add(p);
    for (const p of sd.added) added.add(p);
  }
  if (renamed) {
    const how = [...[...removed].map((p) => `${p} removed`), ...[...added].map((p) => `${p} added`)];
    parts.push(`${renamed} key${s(renamed)} renamed${how.length ? ` (${how.join(', ')})` : ''}`);
  }
  if (dropped) parts.push(`${dropped} key${s(dropped)} dropped`);
  const moves = new Map<string, number>();
  for (const o of plan.outputs)
    for (const d of o.devices) if (d.from !== d.to) moves.set(`${d.from}→${d.to}`, (moves.get(`${d.from}→${d.to}`) ?? 0) + d.tensors);
  for (const [move, n] of moves) parts.push(`${move} ${n} tensor${s(n)}`);
  if (plan.rootChange) parts.push(plan.rootChange);
  if (plan.outputs.length > 1) parts.push(`${plan.outputs.length} output files`);
  return parts.length ? parts.join(' · ') : 'no key or device changes: a plain copy';
}
