import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseComputeApps, parseQueryGpu, QUERY_GPU_ARGS } from '../../../main/devices/parse-query.ts';
import { asOurQuery, crlf, fixture } from './helpers.ts';

describe('nvidia-smi --query-gpu', () => {
  it('reads the H100 capture (header with units, 212 columns, [N/A] values, MIG on)', () => {
    const { gpus, problems } = parseQueryGpu(fixture('query-gpu-h100-80gb-hbm3-mig-1.csv'));
    assert.deepEqual(problems, []);
    assert.equal(gpus.length, 1);
    assert.deepEqual(gpus[0], {
      index: 0,
      uuid: 'GPU-00000000-0000-0000-0000-000000000000',
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:00:09.0',
      memoryTotalMiB: 81559,
      memoryUsedMiB: 11125,
      memoryFreeMiB: 69956,
      utilizationPct: null, // '[N/A]': utilisation is not reported per GPU under MIG
      temperatureC: 53,
      powerDrawW: 433.78,
      powerLimitW: 700,
      driverVersion: '590.48.01',
      migMode: 'Enabled',
      migDevices: [],
    });
  });

  it('reads the same values from our own noheader,nounits query (derived from the capture)', () => {
    const ours = asOurQuery(fixture('query-gpu-h100-80gb-hbm3-mig-1.csv'));
    assert.match(
      ours,
      /^0, GPU-0{8}-0{4}-0{4}-0{4}-0{12}, NVIDIA H100 80GB HBM3, 00000000:00:09\.0, 81559, 11125, 69956, \[N\/A\], 53, 433\.78, 700\.00, 590\.48\.01\n$/,
    );
    const a = parseQueryGpu(ours).gpus[0]!;
    const b = parseQueryGpu(fixture('query-gpu-h100-80gb-hbm3-mig-1.csv')).gpus[0]!;
    assert.deepEqual({ ...a, migMode: null }, { ...b, migMode: null });
  });

  it('reads the L40S and the Windows RTX 2080 SUPER captures, the latter with CRLF', () => {
    const l40s = parseQueryGpu(fixture('query-gpu-l40s-1.csv')).gpus[0]!;
    assert.deepEqual(
      [l40s.name, l40s.pciBusId, l40s.memoryTotalMiB, l40s.utilizationPct, l40s.powerLimitW, l40s.migMode],
      ['NVIDIA L40S', '00000000:01:00.0', 46068, 9, 350, null],
    );
    const win = parseQueryGpu(crlf(fixture('query-gpu-rtx2080super-windows-1.csv')));
    assert.deepEqual(win.problems, []);
    assert.deepEqual(
      [win.gpus[0]!.name, win.gpus[0]!.memoryUsedMiB, win.gpus[0]!.utilizationPct, win.gpus[0]!.powerDrawW, win.gpus[0]!.driverVersion],
      ['NVIDIA GeForce RTX 2080 SUPER', 1366, 7, 97.99, '610.62'],
    );
  });

  it('reads the Tesla P100 nounits capture, which has no index or bus id column', () => {
    const { gpus } = parseQueryGpu(fixture('query-gpu-tesla-p100-1-nounits.csv'));
    assert.equal(gpus.length, 1);
    assert.deepEqual(
      [
        gpus[0]!.index,
        gpus[0]!.uuid,
        gpus[0]!.name,
        gpus[0]!.pciBusId,
        gpus[0]!.memoryUsedMiB,
        gpus[0]!.memoryFreeMiB,
        gpus[0]!.memoryTotalMiB,
        gpus[0]!.temperatureC,
        gpus[0]!.powerDrawW,
      ],
      [0, 'GPU-ef1b2c9b-38d8-2090-2bd1-f567a3eb42a6', 'Tesla P100-PCIE-16GB', null, 0, 16280, null, 37, 28.16],
    );
  });

  it('keeps the rows it can read and reports an error line between them', () => {
    const ours = asOurQuery(fixture('query-gpu-l40s-1.csv'));
    const { gpus, problems } = parseQueryGpu(ours + fixture('error-device-handle-unknown-error.txt'));
    assert.equal(gpus.length, 1);
    assert.deepEqual(problems, ['Unable to determine the device handle for GPU0000:07:00.0: Unknown Error']);
  });

  it('reads no GPU from error texts or garbage', () => {
    for (const f of ['error-driver-communication.txt', 'error-driver-library-mismatch.txt', 'error-no-devices-found.txt']) {
      const r = parseQueryGpu(fixture(f));
      assert.equal(r.gpus.length, 0, f);
      assert.equal(r.problems.length, 1, f);
    }
    assert.equal(parseQueryGpu('a, b, c, d, e, f, g, h, i, j, k, l\n').gpus.length, 0);
  });

  it('asks nvidia-smi for exactly the documented fields', () => {
    assert.deepEqual(QUERY_GPU_ARGS, [
      '--query-gpu=index,uuid,name,pci.bus_id,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw,power.limit,driver_version',
      '--format=csv,noheader,nounits',
    ]);
  });
});

describe('nvidia-smi --query-compute-apps', () => {
  // No real capture of this query exists in ../shared; the rows are those of the H100 table's
  // Processes section (table-h100-80gb-hbm3-mig-1.txt) in this query's format.
  const rows = 'GPU-00000000-0000-0000-0000-000000000000, 21180, /root/tools/memhog, 2296\nGPU-00000000-0000-0000-0000-000000000000, 21198, ./gpu_burn, 7484\n';

  it('reads pid, name and memory, and keeps commas inside a process name', () => {
    const { apps, problems } = parseComputeApps(rows + 'GPU-1, 7, python train.py --tags a,b, [N/A]\r\n');
    assert.deepEqual(problems, []);
    assert.deepEqual(
      apps.map((a) => [a.pid, a.processName, a.usedMemoryMiB]),
      [
        [21180, '/root/tools/memhog', 2296],
        [21198, './gpu_burn', 7484],
        [7, 'python train.py --tags a,b', null],
      ],
    );
  });

  it('skips a header and empty output, and reports garbage', () => {
    assert.deepEqual(parseComputeApps('gpu_uuid, pid, process_name, used_gpu_memory [MiB]\n').apps, []);
    assert.deepEqual(parseComputeApps('').apps, []);
    assert.equal(parseComputeApps('segfault\n').problems.length, 1);
  });
});
