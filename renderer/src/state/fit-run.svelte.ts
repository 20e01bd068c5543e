// The Convert view's "Fit to model…" run: the fit with the user's row edits written as a
// conversion (convert --fit's path, verified), followed like any conversion job.
import type { FitEdit, FitTargetInput } from '../../../shared/fit.ts';
import { getApi } from '../api/index.ts';
import { JobRun } from './job-run.svelte.ts';

class FitRun extends JobRun<'convert'> {
  constructor() {
    super('convert');
  }

  async start(file: string, target: FitTargetInput, edits: FitEdit[], output: string, force: boolean): Promise<void> {
    await this.follow(() => getApi().startFitConversion(file, target, edits, output, force));
  }
}

export const fitRun = new FitRun();
