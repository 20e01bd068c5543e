import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildReading, runState } from '../../../main/devices/read-devices.ts';
import { recogniseSmiFailure } from '../../../main/devices/smi-errors.ts';
import { asOurQuery, fixture } from './helpers.ts';

describe('a reading from captured outputs', () => {
  it('H100 with MIG: GPU, MIG instances, processes, topology, driver and CUDA version', () => {
    const r = buildReading(
      {
        queryGpu: fixture('query-gpu-h100-80gb-hbm3-mig-1.csv'),
        topo: fixture('topo-h100-80gb-hbm3-1.txt'),
        table: fixture('table-h100-80gb-hbm3-mig-1.txt'),
      },
      { env: {} },
    );
    assert.equal(r.status, 'ok');
    assert.equal(r.message, '1 NVIDIA GPU: NVIDIA H100 80GB HBM3 (driver 590.48.01, CUDA 13.1).');
    assert.deepEqual(
      r.gpus[0]!.migDevices.map((m) => m.gpuInstanceId),
      [2, 3, 9, 10],
    );
    // Without a compute-apps output the table's compute processes are used.
    assert.deepEqual(
      r.computeApps.map((a) => [a.gpuIndex, a.pid, a.usedMemoryMiB]),
      [
        [0, 21180, 2296],
        [0, 21181, 1272],
        [0, 21198, 7484],
      ],
    );
    assert.deepEqual(r.links, []);
    assert.equal(r.topology!.affinity[0]!.cpuAffinity, '0-19');
    assert.deepEqual(
      r.visible.devices.map((d) => d.physicalIndex),
      [0],
    );
    assert.match(r.visible.warnings[0]!, /MIG is enabled on GPU 0/);
  });

  it('8-GPU topology alone gives the GPU list and 28 typed links', () => {
    const r = buildReading({ topo: fixture('topo-a100-sxm4-40gb-8-nic.txt') }, { env: {} });
    assert.equal(r.gpus.length, 8);
    assert.deepEqual(r.links.map((l) => ({ a: l.a, b: l.b, type: l.type, nvlinks: l.nvlinks }))[0], { a: 0, b: 1, type: 'NV', nvlinks: 12 });
    assert.equal(r.links.length, 28);
  });

  it('the table fills what the query lacks: MIG mode on the L40S is N/A, the GPU has no instances', () => {
    const r = buildReading({ queryGpu: asOurQuery(fixture('query-gpu-l40s-1.csv')), table: fixture('table-l40s-1.txt'), computeApps: '' }, { env: {} });
    assert.deepEqual([r.gpus[0]!.name, r.gpus[0]!.migMode, r.gpus[0]!.migDevices, r.cudaVersion, r.driverVersion], ['NVIDIA L40S', null, [], '13.2', '595.80']);
    assert.deepEqual(r.computeApps, []);
  });

  it('keeps the readable GPUs when one GPU cannot be reached, with a warning', () => {
    const r = buildReading({ queryGpu: asOurQuery(fixture('query-gpu-l40s-1.csv')) + fixture('error-device-handle-unknown-error.txt') }, { env: {} });
    assert.equal(r.status, 'ok');
    assert.equal(r.gpus.length, 1);
    assert.match(r.warnings[0]!, /cannot reach the GPU at 0000:07:00\.0 \(Unknown Error\)/);
  });

  it('an unreadable topo output is a warning, not a failure', () => {
    const r = buildReading({ queryGpu: asOurQuery(fixture('query-gpu-l40s-1.csv')), topo: 'garbage\n' }, { env: {} });
    assert.equal(r.status, 'ok');
    assert.equal(r.topology, null);
    assert.match(r.warnings[0]!, /topo -m: unreadable output: garbage/);
  });
});

describe('the error outputs of nvidia-smi (real texts)', () => {
  const cases: [string, string, string, RegExp][] = [
    ['error-driver-communication.txt', 'error', 'driver-unreachable', /NVIDIA driver is not running/],
    ['error-driver-library-mismatch.txt', 'error', 'driver-library-mismatch', /Driver\/library version mismatch/],
    ['error-no-devices-found.txt', 'ok', 'no-devices', /found no NVIDIA GPU/],
    ['error-device-handle-unknown-error.txt', 'error', 'device-handle', /GPU at 0000:07:00\.0 \(Unknown Error\)/],
  ];
  for (const [file, status, reason, message] of cases) {
    it(`${file} -> ${status} / ${reason}`, () => {
      const text = fixture(file);
      const r = buildReading({ queryGpu: text }, { env: {} });
      assert.deepEqual([r.status, r.reason], [status, reason]);
      assert.match(r.message, message);
      assert.equal(r.message.includes('\n'), false);
      assert.deepEqual(r.gpus, []);
      // The same text as the output of a failed run (non-zero exit) gives the same state.
      const s = runState({ kind: 'exit', code: 9, signal: null, stdout: text, stderr: '' }, 5000);
      assert.deepEqual([s.status, s.reason], [status, reason]);
    });
  }

  it('an unknown failure text is reported with its exit code', () => {
    assert.equal(recogniseSmiFailure('Segmentation fault'), null);
    assert.equal(
      runState({ kind: 'exit', code: 139, signal: null, stdout: '', stderr: 'Segmentation fault\n' }, 5000).message,
      'nvidia-smi exited with code 139: Segmentation fault.',
    );
  });

  it('states for a missing binary and a timeout', () => {
    assert.deepEqual(runState({ kind: 'missing', binary: 'nvidia-smi' }, 5000).status, 'no-nvidia-smi');
    assert.equal(
      runState({ kind: 'timeout', timeoutMs: 5000, pid: 1 }, 5000).message,
      'nvidia-smi did not answer within 5 s and was stopped; the driver may be busy or a GPU may be hung.',
    );
  });
});
