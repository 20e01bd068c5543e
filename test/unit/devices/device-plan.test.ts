import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceReading } from '../../../shared/devices.ts';
import { planDdp, planDevices } from '../../../main/devices/device-plan.ts';
import { buildReading, runState, stateReading } from '../../../main/devices/read-devices.ts';
import { fixture } from './helpers.ts';

const a100 = (env: Record<string, string> = {}): DeviceReading =>
  buildReading({ topo: fixture('topo-a100-sxm4-40gb-8-nic.txt') }, { env, platform: 'linux', arch: 'x64' });
const a5000 = (env: Record<string, string> = {}): DeviceReading =>
  buildReading({ topo: fixture('topo-rtxa5000-8-mlx5.txt') }, { env, platform: 'linux', arch: 'x64' });
// No 2-GPU topology capture exists in ../shared: the 2-GPU machine is the real 8x A100 box
// restricted with CUDA_VISIBLE_DEVICES=4,5.
const twoGpus = (): DeviceReading => a100({ CUDA_VISIBLE_DEVICES: '4,5' });
const cpuOnly = (): DeviceReading => stateReading(runState({ kind: 'missing', binary: 'nvidia-smi' }, 5000), { env: {}, platform: 'linux', arch: 'x64' });

describe('device plan: cuda tags', () => {
  it('cuda:3 on a 2-GPU machine does not load, and is remapped to cuda:0', () => {
    const plan = planDevices({ 'cuda:3': 120, cpu: 2 }, twoGpus());
    const t = plan.tags.find((x) => x.tag === 'cuda:3')!;
    assert.equal(t.loads, false);
    assert.equal(t.tensors, 120);
    assert.match(t.reason!, /^Attempting to deserialize object on CUDA device 3 but torch\.cuda\.device_count\(\) is 2\./);
    assert.match(t.reason!, /invalid device ordinal/);
    assert.deepEqual(t.fix!.remap, { 'cuda:3': 'cuda:0' });
    assert.equal(t.fix!.line, 'cuda:3 → cuda:0 = GPU 4');
    assert.deepEqual(
      plan.tags.find((x) => x.tag === 'cpu'),
      { tag: 'cpu', tensors: 2, backend: 'cpu', index: null, loads: true, reason: null, lands: 'CPU', fix: null },
    );
    assert.equal(plan.loadsAsIs, false);
    assert.deepEqual(plan.fix, { remap: { 'cuda:3': 'cuda:0' }, line: 'Remap cuda:3 → cuda:0 (CUDA sees 2 GPUs here: cuda:0, cuda:1).' });
    assert.equal(plan.machine, '2 CUDA devices visible: cuda:0 = GPU 4, cuda:1 = GPU 5.');
  });

  it('a checkpoint entirely on one missing GPU also gets the equivalent gpu:K preset', () => {
    const plan = planDevices({ 'cuda:3': 120 }, twoGpus());
    assert.deepEqual([plan.fix!.preset, plan.fix!.remap], ['gpu:0', { 'cuda:3': 'cuda:0' }]);
  });

  it('keeps distinct devices distinct: cuda:0 stays, cuda:3 moves to the unused cuda:1', () => {
    const plan = planDevices({ 'cuda:0': 60, 'cuda:3': 60 }, twoGpus());
    assert.deepEqual(plan.fix!.remap, { 'cuda:3': 'cuda:1' });
    assert.equal(plan.tags[0]!.lands, 'cuda:0 = GPU 4');
  });

  it('cuda:0 and cuda:1 load as saved on the 8-GPU box', () => {
    const plan = planDevices({ 'cuda:0': 100, 'cuda:1': 100 }, a100());
    assert.equal(plan.loadsAsIs, true);
    assert.equal(plan.fix, null);
    assert.deepEqual(
      plan.tags.map((t) => [t.tag, t.loads, t.lands]),
      [
        ['cuda:0', true, 'cuda:0 = GPU 0'],
        ['cuda:1', true, 'cuda:1 = GPU 1'],
      ],
    );
    assert.equal(plan.summary, 'All 200 tensors load as saved: cuda:0 → cuda:0 = GPU 0; cuda:1 → cuda:1 = GPU 1.');
  });

  it("'cuda' without an index means device 0", () => {
    assert.equal(planDevices({ cuda: 5 }, twoGpus()).tags[0]!.loads, true);
  });

  it('any cuda tag on a CPU-only machine: the is_available() error, fix cpu', () => {
    const plan = planDevices({ 'cuda:0': 10, 'cuda:1': 3, cpu: 1 }, cpuOnly());
    for (const t of plan.tags.filter((x) => x.backend === 'cuda')) {
      assert.equal(t.loads, false);
      assert.match(t.reason!, /^Attempting to deserialize object on a CUDA device but torch\.cuda\.is_available\(\) is False\./);
      assert.deepEqual(t.fix!.preset, 'cpu');
    }
    assert.equal(plan.fix!.preset, 'cpu');
    assert.equal(plan.fix!.remap, undefined);
    assert.match(plan.machine, /^No CUDA device: No nvidia-smi on PATH/);
  });

  it('a driver mismatch and an empty CUDA_VISIBLE_DEVICES also mean no CUDA', () => {
    const mismatch = buildReading({ queryGpu: fixture('error-driver-library-mismatch.txt') }, { env: {} });
    assert.equal(planDevices({ 'cuda:0': 1 }, mismatch).tags[0]!.loads, false);
    const hidden = planDevices({ 'cuda:0': 1 }, a100({ CUDA_VISIBLE_DEVICES: '' }));
    assert.equal(hidden.tags[0]!.loads, false);
    assert.match(hidden.tags[0]!.reason!, /CUDA_VISIBLE_DEVICES is empty/);
    // no nvidia-smi: the machine line says so, each tag gives torch's own error alone
    const none = planDevices({ 'cuda:0': 1 }, cpuOnly());
    assert.match(none.machine, /No nvidia-smi on PATH/);
    assert.doesNotMatch(none.tags[0]!.reason!, /nvidia-smi/);
    assert.equal(hidden.fix!.preset, 'cpu');
  });

  it('a timed-out reading cannot tell, and proposes cpu as the safe choice', () => {
    const r = stateReading(runState({ kind: 'timeout', timeoutMs: 5000, pid: 1 }, 5000), { env: {} });
    const plan = planDevices({ 'cuda:0': 1 }, r);
    assert.equal(plan.loadsAsIs, null);
    assert.equal(plan.tags[0]!.loads, null);
    assert.equal(plan.fix!.preset, 'cpu');
  });
});

describe('device plan: other tags', () => {
  it('mps fails on Linux and loads on an Apple-silicon Mac', () => {
    const linux = planDevices({ mps: 4, 'cuda:0': 1 }, a100());
    const mps = linux.tags.find((t) => t.tag === 'mps')!;
    assert.equal(mps.loads, false);
    assert.match(mps.reason!, /Apple-silicon Macs, not on this linux\/x64 machine/);
    assert.deepEqual(linux.fix, { remap: { mps: 'cpu' }, line: 'Remap mps → cpu.' });
    const mac = stateReading(runState({ kind: 'missing', binary: 'nvidia-smi' }, 5000), { env: {}, platform: 'darwin', arch: 'arm64' });
    assert.equal(planDevices({ mps: 4 }, mac).loadsAsIs, true);
  });

  it('meta loads, an unknown backend cannot be told, a malformed tag fails', () => {
    const plan = planDevices({ meta: 2, 'xpu:0': 1, 'cuda:x': 1 }, a100());
    const by = (tag: string) => plan.tags.find((t) => t.tag === tag)!;
    assert.equal(by('meta').loads, true);
    assert.equal(by('xpu:0').loads, null);
    assert.match(by('xpu:0').reason!, /torch\.xpu\.is_available\(\) is False/);
    assert.equal(by('cuda:x').loads, false);
    assert.match(by('cuda:x').reason!, /tagged with cuda:x/);
    assert.deepEqual(plan.fix!.remap, { 'cuda:x': 'cpu', 'xpu:0': 'cpu' });
  });
});

describe('DDP placement from the topology', () => {
  it('world size 4 on the A100 NVLink box: four GPUs all joined by NV12', () => {
    const d = planDevices({ 'cuda:0': 1 }, a100(), { ddpWorldSize: 4 }).ddp!;
    assert.equal(d.feasible, true);
    assert.deepEqual(
      d.ranks.map((r) => [r.rank, r.device, r.physicalIndex]),
      [
        [0, 'cuda:0', 0],
        [1, 'cuda:1', 1],
        [2, 'cuda:2', 2],
        [3, 'cuda:3', 3],
      ],
    );
    assert.deepEqual(d.worstLink, { a: 0, b: 1, label: 'NV12', type: 'NV' });
    assert.equal(d.line, 'Ranks 0-3 on GPUs 0, 1, 2, 3: every pair is NV12, traversing a bonded set of 12 NVLinks.');
    assert.equal(d.cudaVisibleDevices, '0,1,2,3');
  });

  it('world size 4 on the RTX A5000 PCIe box: one PXB/PIX switch group on one NUMA node, never across SYS', () => {
    const r = a5000();
    const d = planDdp(r, 4);
    const chosen = d.ranks.map((x) => x.physicalIndex!);
    assert.deepEqual(chosen, [0, 1, 2, 3]);
    const numa = new Set(chosen.map((g) => r.topology!.affinity.find((a) => a.gpu === g)!.numaAffinity));
    assert.deepEqual([...numa], ['0']);
    assert.equal(d.worstLink!.type, 'PXB');
    assert.equal(
      d.line,
      'Ranks 0-3 on GPUs 0, 1, 2, 3: the weakest pair is PXB, traversing multiple PCIe bridges (without traversing the PCIe Host Bridge); all on NUMA node 0; this avoids SYS, traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI).',
    );
  });

  it('world size 2 on the A5000 box picks a PIX pair', () => {
    const d = planDdp(a5000(), 2);
    assert.deepEqual(
      d.ranks.map((x) => x.physicalIndex),
      [2, 3],
    );
    assert.equal(d.worstLink!.label, 'PIX');
  });

  it('places ranks within CUDA_VISIBLE_DEVICES, in its numbering', () => {
    const d = planDdp(a5000({ CUDA_VISIBLE_DEVICES: '0,4,5,6,7' }), 4);
    assert.deepEqual(
      d.ranks.map((x) => [x.device, x.physicalIndex]),
      [
        ['cuda:1', 4],
        ['cuda:2', 5],
        ['cuda:3', 6],
        ['cuda:4', 7],
      ],
    );
    assert.equal(d.cudaVisibleDevices, '4,5,6,7');
  });

  it('world size 2 on the TITAN X box stays under one host bridge (PHB), not SYS', () => {
    const r = buildReading({ topo: fixture('topo-gtx-titan-x-4-mlx4.txt') }, { env: {} });
    assert.deepEqual(
      planDdp(r, 2).ranks.map((x) => x.physicalIndex),
      [0, 1],
    );
    assert.equal(planDdp(r, 3).worstLink!.type, 'SYS');
  });

  it('says when the world size cannot be met', () => {
    assert.deepEqual([planDdp(twoGpus(), 4).feasible, planDdp(twoGpus(), 4).line], [false, 'World size 4 needs 4 GPUs; CUDA sees 2 here.']);
    assert.equal(planDdp(cpuOnly(), 2).feasible, false);
    assert.equal(planDdp(a100(), 0).feasible, false);
    assert.equal(planDdp(a100(), 8).ranks.length, 8);
  });
});
