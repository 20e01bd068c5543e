// `ckpt inspect` tells whether a checkpoint's device tags load on this machine, reading the
// machine through nvidia-smi (a fake one first on PATH, serving real captured output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InspectReport } from '../../../shared/inspect.ts';
import { runCli } from '../../helpers/run-cli.ts';
import { asOurQuery, fakeSmi, fixture } from '../devices/helpers.ts';

const fx = (p: string): string => new URL(`../../fixtures/torch/${p}`, import.meta.url).pathname;

test('a cuda:3 checkpoint on a one-GPU machine (real L40S capture) does not load; the plan remaps it to cuda:0', () => {
  const query = asOurQuery(fixture('query-gpu-l40s-1.csv'));
  const smi = fakeSmi(`case "$1" in
  --query-gpu=*) printf '%s' '${query.replace(/'/g, "'\\''")}' ;;
  --query-compute-apps=*) ;;
  topo) cat "$F/topo-h100-80gb-hbm3-1.txt" ;;
  *) ;;
esac`);
  try {
    const r = runCli(['inspect', fx('cuda3_single.pt'), '--json'], { env: smi.env as Record<string, string> });
    assert.equal(r.code, 0, r.stderr);
    const plan = (JSON.parse(r.stdout) as InspectReport).devicePlan!;
    assert.equal(plan.loadsAsIs, false);
    const tag = plan.tags.find((t) => t.tag === 'cuda:3')!;
    assert.equal(tag.loads, false);
    assert.match(tag.reason!, /invalid device ordinal|only 1/i);
    assert.deepEqual(plan.fix?.remap, { 'cuda:3': 'cuda:0' });
    const human = runCli(['inspect', fx('cuda3_single.pt')], { env: smi.env as Record<string, string> });
    assert.match(human.stdout, /fix: ckpt convert ".*cuda3_single\.pt" (--preset gpu:0|--map-location cuda:3=cuda:0)/);
  } finally {
    smi.cleanup();
  }
});

test('on a machine without nvidia-smi, CUDA tags do not load and the plan proposes cpu; cpu tags load', () => {
  const env = { PATH: '/usr/bin:/bin' };
  const cuda = JSON.parse(runCli(['inspect', fx('cuda_mixed.pt'), '--json'], { env }).stdout) as InspectReport;
  assert.equal(cuda.devicePlan!.loadsAsIs, false);
  assert.equal(cuda.devicePlan!.fix?.preset, 'cpu');
  const cpu = JSON.parse(runCli(['inspect', fx('cpu_state_dict.pt'), '--json'], { env }).stdout) as InspectReport;
  assert.equal(cpu.devicePlan!.loadsAsIs, true);
  const skipped = JSON.parse(runCli(['inspect', fx('cpu_state_dict.pt'), '--json', '--no-devices'], { env }).stdout) as InspectReport;
  assert.equal(skipped.devicePlan, undefined);
});
