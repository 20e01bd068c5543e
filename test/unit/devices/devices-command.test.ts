import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { devicePlanFor, formatReading, runDevicesCommand } from '../../../main/cli/devices-command.ts';
import { buildReading } from '../../../main/devices/read-devices.ts';
import { fakeSmi, fixture, H100_MACHINE } from './helpers.ts';

function capture() {
  const o = { out: '', err: '' };
  return {
    o,
    io: {
      stdout: (s: string) => {
        o.out += s;
      },
      stderr: (s: string) => {
        o.err += s;
      },
    },
  };
}

const f = fakeSmi(H100_MACHINE);
after(() => f.cleanup());

describe('ckpt devices', () => {
  it('--json against the fake nvidia-smi', async () => {
    const { o, io } = capture();
    assert.equal(await runDevicesCommand(['--json'], io, { env: { ...f.env, CUDA_VISIBLE_DEVICES: '0' } }), 0);
    assert.equal(o.err, '');
    const j = JSON.parse(o.out);
    assert.equal(j.status, 'ok');
    assert.equal(j.message, '1 NVIDIA GPU: NVIDIA H100 80GB HBM3 (driver 590.48.01, CUDA 13.1). 1 visible to CUDA.');
    const g = j.gpus[0];
    assert.deepEqual(
      [g.index, g.uuid, g.name, g.pciBusId, g.memoryTotalMiB, g.memoryUsedMiB, g.utilizationPct],
      [0, 'GPU-00000000-0000-0000-0000-000000000000', 'NVIDIA H100 80GB HBM3', '00000000:00:09.0', 81559, 11125, null],
    );
    assert.deepEqual(j.links, []);
    assert.deepEqual(j.visible.devices, [
      { ordinal: 0, physicalIndex: 0, uuid: 'GPU-00000000-0000-0000-0000-000000000000', name: 'NVIDIA H100 80GB HBM3', mig: false },
    ]);
    assert.equal(j.visible.cudaVisibleDevices, '0');
    assert.equal(j.legend.find((e: { code: string }) => e.code === 'NV#').meaning, 'Connection traversing a bonded set of # NVLinks');
  });

  it('human output: GPU table, processes, CUDA view and status', async () => {
    const { o, io } = capture();
    assert.equal(await runDevicesCommand([], io, { env: f.env }), 0);
    assert.match(o.out, /^GPU {2}Name {19}Memory used\/total {2}Util {2}Temp {2}Power {8}PCI bus {11}MIG\n/);
    assert.match(o.out, /\n0 {4}NVIDIA H100 80GB HBM3 {2}11125 \/ 81559 MiB {2}- {5}53C {3}434 \/ 700 W {2}00000000:00:09\.0 {2}Enabled \(4 instances\)\n/);
    assert.match(o.out, /\n0 {4}21198 {2}\.\/gpu_burn {10}7484 MiB\n/);
    assert.match(o.out, /\nCUDA: CUDA_VISIBLE_DEVICES is not set: CUDA sees the one GPU as cuda:0\.\n/);
    assert.match(o.out, /\nStatus: ok: 1 NVIDIA GPU: NVIDIA H100 80GB HBM3/);
  });

  it('the topology matrix and the legend of the codes it uses', () => {
    const text = formatReading(buildReading({ topo: fixture('topo-rtxa5000-8-mlx5.txt') }, { env: {} }));
    assert.match(text, /\nGPU2 {4}PXB {3}PXB {3}X {5}PIX {3}SYS {3}SYS {3}SYS {3}SYS {3}NODE {4}NODE {4}0-15 {10}0\n/);
    assert.match(text, /\n {2}PIX {2}= Connection traversing at most a single PCIe bridge\n/);
    assert.doesNotMatch(text, /NV# /);
    const a100 = formatReading(buildReading({ topo: fixture('topo-a100-sxm4-40gb-8-nic.txt') }, { env: {} }));
    assert.match(a100, /\n {2}NV# {2}= Connection traversing a bonded set of # NVLinks\n {2}NIC0 = mlx5_0\n/);
  });

  it('no nvidia-smi: the message, exit 0', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-nvidia-smi-'));
    try {
      const { o, io } = capture();
      assert.equal(await runDevicesCommand(['--json'], io, { env: { PATH: empty } }), 0);
      const j = JSON.parse(o.out);
      assert.deepEqual([j.status, j.gpus, j.links], ['no-nvidia-smi', [], []]);
      const human = capture();
      assert.equal(await runDevicesCommand([], human.io, { env: { PATH: empty } }), 0);
      assert.match(human.o.out, /Status: no-nvidia-smi: No nvidia-smi on PATH/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('usage errors exit 2; --help exits 0', async () => {
    const bad = capture();
    assert.equal(await runDevicesCommand(['--jsn'], bad.io, { env: f.env }), 2);
    assert.match(bad.o.err, /^ckpt devices: unknown argument '--jsn'\n/);
    assert.equal(bad.o.out, '');
    const t = capture();
    assert.equal(await runDevicesCommand(['--timeout', 'soon'], t.io, { env: f.env }), 2);
    assert.match(t.o.err, /--timeout needs a number of seconds above 0, not 'soon'/);
    const help = capture();
    assert.equal(await runDevicesCommand(['--help'], help.io), 0);
    assert.match(help.o.out, /^Usage: ckpt devices/);
  });

  it('--timeout bounds a hanging nvidia-smi', async () => {
    const slow = fakeSmi('exec sleep 30');
    try {
      const { o, io } = capture();
      assert.equal(await runDevicesCommand(['--json', '--timeout=0.2'], io, { env: slow.env }), 0);
      assert.equal(JSON.parse(o.out).reason, 'timeout');
    } finally {
      slow.cleanup();
    }
  });

  it('devicePlanFor gives the plan for `ckpt inspect --json`', () => {
    const reading = buildReading({ topo: fixture('topo-a100-sxm4-40gb-8-nic.txt') }, { env: { CUDA_VISIBLE_DEVICES: '4,5' } });
    const plan = devicePlanFor({ 'cuda:3': 120, cpu: 2 }, reading);
    assert.deepEqual(plan.fix!.remap, { 'cuda:3': 'cuda:0' });
    assert.equal(JSON.parse(JSON.stringify(plan)).summary, plan.summary);
  });
});
