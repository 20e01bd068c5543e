import * as fs from 'node:fs';
import type { ConversionPlan, ExistingOutput } from '../../shared/convert.ts';
import type { ConversionRules } from '../../shared/presets.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';
import { previewConversion } from '../convert/convert-file.ts';
import { describeExisting } from '../convert/describe-existing.ts';
import { planConversion, rulesFor } from '../convert/plan.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';

interface Entry {
  file: string;
  ino: number;
  size: number;
  mtimeMs: number;
  checkpoint: Checkpoint;
}

/**
 * The Convert view previews the same file on every debounced change of its rules. Opening a
 * 10,000-tensor checkpoint takes 0.25 s and planning it 0.02 s, so the last file previewed stays
 * open while it is the same file (inode) with the same size and modification time. Folders (DCP) are opened each time:
 * a folder's own time does not change when a file inside it is rewritten.
 */
export class PreviewCache {
  private entry: Entry | null = null;
  /**
   * What each existing output of the last preview holds, by path, with the stat it was read at:
   * describing one opens it as a checkpoint, which a change of the rules does not change.
   */
  private existing = new Map<string, { stat: string; holds: ExistingOutput | null }>();

  /** The plan, with what each output that exists holds now. */
  preview(file: string, rules: ConversionRules, output: string | null): ConversionPlan {
    const plan = this.plan(file, rules, output);
    const described = new Map<string, { stat: string; holds: ExistingOutput | null }>();
    for (const o of plan.outputs) {
      const st = o.exists ? statOrNull(o.file) : null;
      if (!st) continue;
      const stat = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      const known = this.existing.get(o.file);
      const holds = known?.stat === stat ? known.holds : describeExisting(o.file);
      described.set(o.file, { stat, holds });
      if (holds) o.holds = holds;
    }
    this.existing = described;
    return plan;
  }

  private plan(file: string, rules: ConversionRules, output: string | null): ConversionPlan {
    const st = statOrNull(file);
    if (!st?.isFile()) {
      this.clear();
      return previewConversion(file, rules, output);
    }
    const e = this.entry;
    if (!e || e.file !== file || e.ino !== st.ino || e.size !== st.size || e.mtimeMs !== st.mtimeMs) {
      this.clear();
      this.entry = { file, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, checkpoint: openCheckpoint(file, { shardedRanks: 'consolidate' }) };
    }
    return planConversion(this.entry!.checkpoint, rulesFor(this.entry!.checkpoint, rules), output);
  }

  /** Closes the file kept open, if any. */
  clear(): void {
    this.entry?.checkpoint.close();
    this.entry = null;
    this.existing.clear();
  }
}

function statOrNull(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null; // the open below reports it
  }
}
