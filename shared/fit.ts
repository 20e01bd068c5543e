/**
 * "Will it load?": what `model.load_state_dict(sd, strict=True)` would say about a checkpoint and
 * a target model, the rules that make it load, and what it would say after them. Plain data
 * shared by the engine, the CLI (`ckpt fit --json`) and the UI.
 */
import * as v from 'valibot';
import { absolutePath, fields, text } from './checks.ts';

/** One key of a state dict; `shape` is null where the target does not say (a missing key in a pasted error). */
export interface KeyShape {
  key: string;
  shape: number[] | null;
}

export interface SizeMismatch {
  key: string;
  checkpointShape: number[];
  modelShape: number[];
}

/** What strict loading reports, and the message torch would raise (null: it loads). */
export interface StrictLoad {
  missing: string[];
  unexpected: string[];
  mismatched: SizeMismatch[];
  message: string | null;
}

export type FitRuleKind =
  | 'unwrap'
  | 'strip-prefix'
  | 'add-prefix'
  | 'remove-component'
  | 'add-component'
  | 'rename'
  | 'exclude-head'
  | 'fill-from-target'
  | 'drop-unexpected';

export interface FitRule {
  kind: FitRuleKind;
  /** one line saying what the rule does */
  text: string;
  /** prefix or component rules: the prefix; renames: the checkpoint's module or key */
  from?: string;
  /** renames: the model's module or key */
  to?: string;
  /** how many keys the rule changes */
  keys?: number;
  /** renames: 0..1, and what the match rests on */
  confidence?: number;
  basis?: ('shape' | 'structure' | 'order' | 'name')[];
}

/** A checkpoint module (or key) with more than one equally good place in the model: the user decides. */
export interface FitAmbiguity {
  checkpoint: string[];
  model: string[];
  text: string;
}

/** A row of the mapping as the user edited it in the app: the model key it goes to, or null (left out). */
export const FitEditSchema = fields({ from: text, to: v.nullable(text) });
export type FitEdit = v.InferOutput<typeof FitEditSchema>;

/** A fit target as the UI gives it: a file, or text pasted into the app (torch's error, or key/shape lines). */
export const FitTargetInputSchema = v.pipe(
  fields({
    file: v.exactOptional(absolutePath),
    /** pasted, up to 4 MiB: torch's error for 10,000 keys is long */
    text: v.exactOptional(v.custom<string>((s) => typeof s === 'string' && s.length <= 4 << 20 && !s.includes('\0'), 'must be text of at most 4 MiB')),
  }),
  v.rawTransform(({ dataset, addIssue, NEVER }): { file: string } | { text: string } => {
    const { file, text } = dataset.value;
    if (file !== undefined && text === undefined) return { file };
    if (text !== undefined && file === undefined) return { text };
    addIssue({ message: 'must be {file} or {text}' });
    return NEVER;
  }),
);
export type FitTargetInput = v.InferOutput<typeof FitTargetInputSchema>;

export interface FitTargetInfo {
  /** what the target was read from */
  kind: 'checkpoint' | 'onnx' | 'load-error' | 'shape-lines';
  file: string;
  keys: number;
  /** the model class a pasted error names */
  className?: string;
}

export interface FitReport {
  source: string;
  target: FitTargetInfo;
  /** what strict=True says today */
  missing: string[];
  unexpected: string[];
  mismatched: SizeMismatch[];
  message: string | null;
  rules: FitRule[];
  ambiguous: FitAmbiguity[];
  /** what strict=True says once the rules are applied */
  after: StrictLoad;
  /** strict=True loads after the rules */
  fits: boolean;
  /** the only thing left is heads excluded on purpose: strict=False loads everything else */
  loadsNonStrict: boolean;
  /** every key of the checkpoint's model state dict → its new key (null: dropped) */
  mapping: { from: string; to: string | null }[];
  notes: string[];
}
