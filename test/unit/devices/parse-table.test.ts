import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSmiTable, type SmiTable } from '../../../main/devices/parse-table.ts';
import { crlf, fixture } from './helpers.ts';

function table(name: string): SmiTable {
  const t = parseSmiTable(fixture(name));
  assert.ok(t, `${name} parses`);
  return t;
}

describe('default nvidia-smi table: MIG', () => {
  it('H100 (590.48.01): four MIG instances with their memory slices and SMs, processes with GI/CI', () => {
    const t = table('table-h100-80gb-hbm3-mig-1.txt');
    assert.deepEqual([t.driverVersion, t.cudaVersion], ['590.48.01', '13.1']);
    assert.equal(t.gpus[0]!.migMode, 'Enabled');
    assert.equal(t.gpus[0]!.utilizationPct, null);
    assert.deepEqual(
      t.migDevices!.map((m) => [m.gpuInstanceId, m.computeInstanceId, m.migIndex, m.memoryUsedMiB, m.memoryTotalMiB, m.sm]),
      [
        [2, 0, 0, 11091, 40448, 60],
        [3, 0, 1, 17, 20096, 32],
        [9, 0, 2, 9, 9984, 16],
        [10, 0, 3, 9, 9984, 16],
      ],
    );
    assert.deepEqual(
      t.processes.map((p) => [p.gpuInstanceId, p.computeInstanceId, p.pid, p.type, p.processName, p.usedMemoryMiB]),
      [
        [2, 0, 21180, 'C', '/root/tools/memhog', 2296],
        [2, 0, 21181, 'C', '/root/tools/memhog', 1272],
        [2, 0, 21198, 'C', './gpu_burn', 7484],
      ],
    );
  });

  it('A100-SXM4 (r460, 79 columns): three 2g.10gb instances', () => {
    const t = table('table-a100-sxm4-40gb-mig-1-r460.txt');
    assert.deepEqual(
      t.gpus.map((g) => [g.name, g.migMode, g.memoryUsedMiB, g.memoryTotalMiB, g.powerDrawW, g.powerLimitW]),
      [['A100-SXM4-40GB', 'Enabled', 27254, 40536, 194, 400]],
    );
    assert.deepEqual(
      t.migDevices!.map((m) => [m.gpuInstanceId, m.memoryUsedMiB, m.memoryTotalMiB, m.sm]),
      [
        [3, 9118, 9984, 28],
        [4, 9118, 9984, 28],
        [5, 9016, 9984, 28],
      ],
    );
    assert.deepEqual(
      t.processes.map((p) => [p.gpuInstanceId, p.pid, p.usedMemoryMiB]),
      [
        [3, 142213, 9111],
        [4, 146799, 9111],
        [5, 132219, 9009],
      ],
    );
  });

  it('MIG enabled with "No MIG devices found": an empty list, not a missing section', () => {
    const t = table('table-a100-sxm4-40gb-mig-nodevices-1-r460.txt');
    assert.equal(t.gpus[0]!.migMode, 'Enabled');
    assert.deepEqual(t.migDevices, []);
    assert.deepEqual(t.processes, []);
  });

  it('no MIG section on a GPU without MIG', () => {
    assert.equal(table('table-l40s-1.txt').migDevices, null);
  });
});

describe('default nvidia-smi table: layouts', () => {
  it('10x A40 and 8x H100', () => {
    const a40 = table('table-a40-10.txt');
    assert.deepEqual(
      a40.gpus.map((g) => g.index),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(a40.gpus[9]!.pciBusId, '00000000:D6:00.0');
    assert.equal(a40.gpus[5]!.pciBusId, '00000000:CE:00.0');
    const h100 = table('table-h100-80gb-hbm3-8.txt');
    assert.equal(h100.gpus.length, 8);
    assert.deepEqual(
      [h100.gpus[7]!.name, h100.gpus[7]!.pciBusId, h100.gpus[7]!.powerDrawW, h100.gpus[7]!.migMode],
      ['NVIDIA H100 80GB HBM3', '00000000:DB:00.0', 75, 'Disabled'],
    );
  });

  it('r390 (no GI/CI columns, no CUDA version) and a truncated name', () => {
    const t = table('table-gtx1080ti-3-r390.txt');
    assert.deepEqual([t.driverVersion, t.cudaVersion], ['390.77', null]);
    assert.deepEqual(
      t.gpus.map((g) => [g.name, g.nameTruncated, g.utilizationPct, g.temperatureC]),
      [
        ['GeForce GTX 108...', true, 100, 64],
        ['GeForce GTX 108...', true, 100, 68],
        ['GeForce GTX 108...', true, 100, 59],
      ],
    );
    assert.deepEqual(
      t.processes.map((p) => [p.gpuIndex, p.pid, p.gpuInstanceId, p.processName, p.usedMemoryMiB]),
      [
        [0, 4910, null, '/usr/bin/xmr-stak', 2203],
        [1, 4910, null, '/usr/bin/xmr-stak', 2203],
        [2, 4910, null, '/usr/bin/xmr-stak', 2203],
      ],
    );
  });

  it('r470 with "CUDA Version: N/A"', () => {
    const t = table('table-a100-pcie-40gb-1-r470.txt');
    assert.deepEqual(
      [t.driverVersion, t.cudaVersion, t.gpus[0]!.name, t.gpus[0]!.nameTruncated, t.gpus[0]!.temperatureC],
      ['470.82.01', null, 'NVIDIA A100-PCI...', true, 66],
    );
  });

  it('Windows (WDDM driver model, C+G processes with N/A memory), also with CRLF', () => {
    const t = table('table-rtx2080super-windows-1.txt');
    assert.deepEqual([t.driverVersion, t.cudaVersion], ['610.62', '13.3']);
    assert.equal(t.gpus[0]!.name, 'NVIDIA GeForce RTX 2080 ...');
    assert.equal(t.processes.length, 21);
    assert.deepEqual(t.processes[10], {
      gpuIndex: 0,
      gpuInstanceId: null,
      computeInstanceId: null,
      pid: 15964,
      type: 'C+G',
      processName: '...IA App\\CEF\\NVIDIA Overlay.exe',
      usedMemoryMiB: null,
    });
    assert.deepEqual(parseSmiTable(crlf(fixture('table-rtx2080super-windows-1.txt'))), t);
  });

  it('Linux 610 header (KMD Version, CUDA UMD Version) and G/C processes', () => {
    const t = table('table-rtx2080super-linux610-1.txt');
    assert.deepEqual([t.driverVersion, t.cudaVersion], ['610.57.04', '13.3']);
    assert.deepEqual(
      t.processes.map((p) => p.type),
      ['G', 'G', 'C', 'C'],
    );
  });

  it('Jetson AGX Orin: every value N/A or Not Supported', () => {
    const g = table('table-jetson-agx-orin-1.txt').gpus[0]!;
    assert.deepEqual(g, {
      index: 0,
      name: 'Orin (nvgpu)',
      nameTruncated: false,
      pciBusId: null,
      memoryUsedMiB: null,
      memoryTotalMiB: null,
      utilizationPct: null,
      temperatureC: null,
      powerDrawW: null,
      powerLimitW: null,
      migMode: null,
    });
  });

  it('GH200, and an empty Processes section', () => {
    assert.deepEqual(
      table('table-gh200-1.txt').gpus.map((g) => [g.name, g.memoryTotalMiB]),
      [['NVIDIA GH200 480GB', 97871]],
    );
    const t = table('table-rtx3090-1-emptyprocs.txt');
    assert.deepEqual([t.gpus[0]!.utilizationPct, t.processes], [39, []]);
  });

  it('is null for error texts', () => {
    assert.equal(parseSmiTable(fixture('error-no-devices-found.txt')), null);
  });
});
