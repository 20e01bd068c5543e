// The process boundary: a fake `nvidia-smi` (a bash script written at test time) first on PATH.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { DeviceReading } from '../../../shared/devices.ts';
import { startDevicePoller } from '../../../main/devices/poller.ts';
import { readDevices } from '../../../main/devices/read-devices.ts';
import { allExited, runNvidiaSmi } from '../../../main/devices/run-nvidia-smi.ts';
import { fakeSmi, H100_MACHINE, type FakeSmi } from './helpers.ts';

const fakes: FakeSmi[] = [];
function fake(body: string): FakeSmi {
  const f = fakeSmi(body);
  fakes.push(f);
  return f;
}
after(() => fakes.forEach((f) => f.cleanup()));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('readDevices against a fake nvidia-smi', () => {
  it('serves the captured H100 machine: four commands, each argument passed as is', async () => {
    const f = fake(H100_MACHINE);
    const r = await readDevices({ env: f.env });
    assert.equal(r.status, 'ok');
    assert.deepEqual(r.warnings, []);
    assert.equal(r.gpus[0]!.name, 'NVIDIA H100 80GB HBM3');
    assert.deepEqual(
      r.gpus[0]!.migDevices.map((m) => m.memoryTotalMiB),
      [40448, 20096, 9984, 9984],
    );
    assert.deepEqual(
      r.computeApps.map((a) => [a.gpuIndex, a.pid, a.processName]),
      [
        [0, 21180, '/root/tools/memhog'],
        [0, 21181, '/root/tools/memhog'],
        [0, 21198, './gpu_burn'],
      ],
    );
    assert.deepEqual(r.topology!.affinity[0], { gpu: 0, cpuAffinity: '0-19', numaAffinity: '0', gpuNumaId: null });
    assert.deepEqual(f.calls().sort(), [
      '',
      '--query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader,nounits',
      '--query-gpu=index,uuid,name,pci.bus_id,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw,power.limit,driver_version --format=csv,noheader,nounits',
      'topo -m',
    ]);
  });

  it('honours CUDA_VISIBLE_DEVICES from the given environment', async () => {
    const f = fake(H100_MACHINE);
    const r = await readDevices({ env: { ...f.env, CUDA_VISIBLE_DEVICES: '' } });
    assert.deepEqual(r.visible.devices, []);
    assert.equal(r.visible.cudaVisibleDevices, '');
  });

  it('a slow nvidia-smi times out, is killed, and the reading says so', async () => {
    const f = fake('echo $$ > "$DIR/pid"; exec sleep 30');
    const started = Date.now();
    const r = await readDevices({ env: f.env, timeoutMs: 300 });
    const took = Date.now() - started;
    assert.deepEqual([r.status, r.reason], ['error', 'timeout']);
    assert.equal(r.message, 'nvidia-smi did not answer within 0.3 s and was stopped; the driver may be busy or a GPU may be hung.');
    assert.ok(took < 3000, `returned after ${took} ms`);
    const pid = Number(readFileSync(join(f.dir, 'pid'), 'utf8'));
    await allExited();
    assert.equal(alive(pid), false, `fake nvidia-smi ${pid} still running`);
    assert.equal(f.calls().length, 1, 'no further command after the first timed out');
  });

  it('a non-zero exit with the NVML mismatch text', async () => {
    const f = fake('cat "$F/error-driver-library-mismatch.txt"; exit 18');
    const r = await readDevices({ env: f.env });
    assert.deepEqual([r.status, r.reason], ['error', 'driver-library-mismatch']);
    assert.match(r.message, /usually after a driver update/);
  });

  it('a non-zero exit with the driver text on stderr', async () => {
    const f = fake('cat "$F/error-driver-communication.txt" >&2; exit 9');
    const r = await readDevices({ env: f.env });
    assert.deepEqual([r.status, r.reason], ['error', 'driver-unreachable']);
  });

  it('"No devices were found" is a reading with no GPU, not an error', async () => {
    const f = fake('cat "$F/error-no-devices-found.txt"; exit 6');
    const r = await readDevices({ env: f.env });
    assert.deepEqual([r.status, r.reason, r.gpus], ['ok', 'no-devices', []]);
  });

  it('garbage output', async () => {
    const f = fake(`printf '\\x00\\x01\\x7fgarbage %s\\n' "$RANDOM"`);
    const r = await readDevices({ env: f.env });
    assert.deepEqual([r.status, r.reason], ['error', 'unparseable']);
    assert.match(r.message, /^nvidia-smi printed something this app cannot read: ".*garbage/);
  });

  it('no nvidia-smi on PATH: a CPU-only machine', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-nvidia-smi-'));
    try {
      const r = await readDevices({ env: { PATH: empty } });
      assert.deepEqual([r.status, r.reason], ['no-nvidia-smi', 'no-nvidia-smi']);
      assert.equal(r.message, 'No nvidia-smi on PATH: this looks like a machine without NVIDIA GPUs, so CUDA devices are unavailable here.');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('a secondary command failing leaves a warning', async () => {
    const f = fake(H100_MACHINE.replace('topo) cat "$F/topo-h100-80gb-hbm3-1.txt" ;;', 'topo) echo "topo not supported" >&2; exit 2 ;;'));
    const r = await readDevices({ env: f.env });
    assert.equal(r.status, 'ok');
    assert.equal(r.topology, null);
    assert.deepEqual(r.warnings, ['nvidia-smi topo -m: nvidia-smi exited with code 2: topo not supported.']);
  });

  it('cancellation kills the child', async () => {
    const f = fake('echo $$ > "$DIR/pid"; exec sleep 30');
    const controller = new AbortController();
    const run = runNvidiaSmi(['-L'], { env: f.env, signal: controller.signal });
    for (let i = 0; i < 100 && f.calls().length === 0; i++) await sleep(20);
    await sleep(50);
    controller.abort();
    assert.deepEqual(await run, { kind: 'cancelled' });
    await allExited();
    assert.equal(alive(Number(readFileSync(join(f.dir, 'pid'), 'utf8'))), false);
  });
});

describe('the poller', () => {
  it('never overlaps reads, even when each read is slower than the interval', async () => {
    let running = 0;
    let most = 0;
    const spans: [number, number][] = [];
    const readings: DeviceReading[] = [];
    const f = fake(H100_MACHINE);
    const poller = startDevicePoller({
      intervalMs: 5,
      read: async () => {
        running++;
        most = Math.max(most, running);
        const start = Date.now();
        const r = await readDevices({ env: f.env });
        await sleep(30);
        spans.push([start, Date.now()]);
        running--;
        return r;
      },
      onReading: (r) => readings.push(r),
    });
    await sleep(400);
    poller.stop();
    await poller.stopped;
    assert.equal(most, 1);
    assert.ok(spans.length >= 2, `${spans.length} reads`);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1]);
    // Every finished read is delivered, except one still in flight when stop() came.
    assert.ok(readings.length === spans.length || readings.length === spans.length - 1);
    const n = readings.length;
    await sleep(100);
    assert.equal(readings.length, n, 'nothing delivered after stop()');
  });

  it('with a hanging nvidia-smi: one process at a time, each killed before the next starts', async () => {
    // Each start records whether any earlier fake is still alive.
    const f = fake(
      'for p in $(cat "$DIR/pids" 2>/dev/null); do kill -0 "$p" 2>/dev/null && echo OVERLAP >> "$DIR/overlaps"; done; echo $$ >> "$DIR/pids"; exec sleep 30',
    );
    const readings: DeviceReading[] = [];
    const poller = startDevicePoller({ intervalMs: 20, readOptions: { env: f.env, timeoutMs: 150 }, onReading: (r) => readings.push(r) });
    await sleep(800);
    poller.stop();
    await poller.stopped;
    const pids = readFileSync(join(f.dir, 'pids'), 'utf8').trim().split('\n').map(Number);
    assert.ok(pids.length >= 3, `${pids.length} runs`);
    assert.throws(() => readFileSync(join(f.dir, 'overlaps')), /ENOENT/);
    assert.ok(pids.every((p) => !alive(p)));
    assert.ok(readings.every((r) => r.reason === 'timeout'));
  });
});
