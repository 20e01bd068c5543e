// The fit itself, keys already read: `node --import tsx test/bench/fit-step.ts <checkpoint> <target>`
// prints the median milliseconds of 5 runs of fitState (opening the checkpoint is inspect's cost,
// measured by the inspect benchmark).
import { openCheckpoint } from '../../main/inputs/open-checkpoint.ts';
import { fitState } from '../../main/fit/fit.ts';
import { modelState } from '../../main/fit/model-state.ts';
import { readFitTarget } from '../../main/fit/target.ts';
import { median } from './measure.ts';

const [source, targetFile] = process.argv.slice(2);
const ck = openCheckpoint(source!, { shardedRanks: 'consolidate' });
const state = modelState(ck);
const target = readFitTarget(targetFile!, state.entries);
const ms: number[] = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  fitState(source!, state, target);
  ms.push(performance.now() - t0);
}
console.log(median(ms).toFixed(1));
ck.close();
