import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTopology } from '../../../main/devices/parse-topology.ts';
import { parseCudaVisibleDevices, resolveVisibleDevices, type PhysicalGpu } from '../../../main/devices/visible-devices.ts';
import { fixture } from './helpers.ts';

// The 8 GPUs of the A100 topology capture.
const a100: PhysicalGpu[] = parseTopology(fixture('topo-a100-sxm4-40gb-8-nic.txt'))!.gpus.map((index) => ({
  index,
  uuid: null,
  name: 'NVIDIA A100-SXM4-40GB',
}));

// The two RTX A5000s of q-x-rtxa5000-2.xml; nvidia-smi numbers them in PCI bus order (81 before C1).
function a5000Pair(): PhysicalGpu[] {
  const xml = fixture('q-x-rtxa5000-2.xml');
  const gpus = [...xml.matchAll(/<uuid>(GPU-[^<]+)<\/uuid>[\s\S]*?<pci_bus_id>([^<]+)<\/pci_bus_id>/g)].map((m) => ({ uuid: m[1]!, bus: m[2]! }));
  return gpus.sort((a, b) => a.bus.localeCompare(b.bus)).map((g, index) => ({ index, uuid: g.uuid, name: 'NVIDIA RTX A5000' }));
}

const physical = (env: Record<string, string>, gpus: PhysicalGpu[] = a100) => resolveVisibleDevices(gpus, env).devices.map((d) => d.physicalIndex);

describe('CUDA_VISIBLE_DEVICES', () => {
  it('unset: every GPU in nvidia-smi order', () => {
    const v = resolveVisibleDevices(a100, {});
    assert.deepEqual(
      v.devices.map((d) => [d.ordinal, d.physicalIndex]),
      [
        [0, 0],
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 5],
        [6, 6],
        [7, 7],
      ],
    );
    assert.equal(v.note, 'CUDA_VISIBLE_DEVICES is not set: CUDA sees all 8 GPUs, cuda:K is GPU K.');
    assert.deepEqual(v.warnings, []);
  });

  it('2,3: cuda:0 is GPU 2 and cuda:1 is GPU 3', () => {
    const v = resolveVisibleDevices(a100, { CUDA_VISIBLE_DEVICES: '2,3' });
    assert.deepEqual(
      v.devices.map((d) => [d.ordinal, d.physicalIndex, d.name]),
      [
        [0, 2, 'NVIDIA A100-SXM4-40GB'],
        [1, 3, 'NVIDIA A100-SXM4-40GB'],
      ],
    );
    assert.equal(v.note, 'CUDA_VISIBLE_DEVICES=2,3: cuda:0 is GPU 2, cuda:1 is GPU 3.');
  });

  it('reorders: 7,0 puts GPU 7 first', () => {
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: '7, 0' }), [7, 0]);
  });

  it('empty string: no device', () => {
    const v = resolveVisibleDevices(a100, { CUDA_VISIBLE_DEVICES: '' });
    assert.deepEqual(v.devices, []);
    assert.equal(v.note, 'CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU.');
  });

  it('an invalid entry ends the list where it stands', () => {
    const v = resolveVisibleDevices(a100, { CUDA_VISIBLE_DEVICES: '1,9,2' });
    assert.deepEqual(
      v.devices.map((d) => d.physicalIndex),
      [1],
    );
    assert.match(v.warnings[0]!, /'9' is not a usable GPU here/);
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: '3,-1,4' }), [3]);
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: '3,x,4' }), [3]);
  });

  it('reads entries like strtoul and empties the list on a repeat', () => {
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: '1gpu2,2ampere' }), [1, 2]);
    const v = resolveVisibleDevices(a100, { CUDA_VISIBLE_DEVICES: '0,1,0' });
    assert.deepEqual(v.devices, []);
    assert.match(v.warnings[0]!, /twice/);
    assert.deepEqual(parseCudaVisibleDevices('0,1,0'), { kind: 'repeated', entry: '0' });
  });

  it('GPU UUIDs, whole or as a unique prefix, in the order given', () => {
    const pair = a5000Pair();
    assert.deepEqual(
      pair.map((g) => g.uuid),
      ['GPU-12345678-aaaa-bbbb-cccc-0123456789ab', 'GPU-12345678-aaaa-bbbb-cccc-0123456789cd'],
    );
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: 'GPU-12345678-aaaa-bbbb-cccc-0123456789cd' }, pair), [1]);
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: 'GPU-12345678-aaaa-bbbb-cccc-0123456789c,GPU-12345678-aaaa-bbbb-cccc-0123456789a' }, pair), [1, 0]);
    const ambiguous = resolveVisibleDevices(pair, { CUDA_VISIBLE_DEVICES: 'GPU-12345678' });
    assert.deepEqual(ambiguous.devices, []);
    assert.match(ambiguous.warnings[0]!, /matches 2 GPUs/);
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: 'GPU-12345678-aaaa-bbbb-cccc-0123456789cd,1' }, pair), [1]);
    assert.deepEqual(physical({ CUDA_VISIBLE_DEVICES: 'GPU-12345678-aaaa-bbbb-cccc-0123456789cd,GPU-12345678-aaaa-bbbb-cccc-0123456789c' }, pair), []);
  });

  it('MIG UUIDs: visible, but not placed on a GPU', () => {
    const v = resolveVisibleDevices(a100, { CUDA_VISIBLE_DEVICES: 'MIG-4f2a,MIG-77c1' });
    assert.deepEqual(
      v.devices.map((d) => [d.ordinal, d.physicalIndex, d.uuid, d.mig]),
      [
        [0, null, 'MIG-4f2a', true],
        [1, null, 'MIG-77c1', true],
      ],
    );
    assert.equal(v.warnings.length, 1);
  });

  it('warns when models are mixed and CUDA numbers fastest first', () => {
    const mixed: PhysicalGpu[] = [
      { index: 0, uuid: null, name: 'NVIDIA GeForce RTX 3090' },
      { index: 1, uuid: null, name: 'NVIDIA L40S' },
    ];
    assert.match(resolveVisibleDevices(mixed, {}).warnings[0]!, /CUDA_DEVICE_ORDER=PCI_BUS_ID/);
    assert.deepEqual(resolveVisibleDevices(mixed, { CUDA_DEVICE_ORDER: 'PCI_BUS_ID' }).warnings, []);
  });
});
