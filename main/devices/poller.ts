/**
 * Live refresh of the device reading. Runs never overlap: the next read starts only after the
 * previous one has finished (or timed out) and its nvidia-smi processes have exited,
 * `intervalMs` after the previous one started, or at once if that read took longer. stop() cancels the read in flight (its nvidia-smi is killed)
 * and delivers nothing more.
 */
import type { DeviceReading } from '../../shared/devices.ts';
import { readDevices, type ReadOptions } from './read-devices.ts';
import { allExited } from './run-nvidia-smi.ts';

export interface PollerOptions {
  /** Default 2000 ms. */
  intervalMs?: number;
  /** Called with every reading, in order. */
  onReading: (reading: DeviceReading) => void;
  /** Reads the machine; default readDevices(readOptions) with the poller's cancel signal. */
  read?: (signal: AbortSignal) => Promise<DeviceReading>;
  readOptions?: ReadOptions;
}

export interface DevicePoller {
  stop(): void;
  /** Resolves when the read in flight (if any) has settled after stop(). */
  readonly stopped: Promise<void>;
}

export function startDevicePoller(opts: PollerOptions): DevicePoller {
  const intervalMs = opts.intervalMs ?? 2000;
  const controller = new AbortController();
  const read = opts.read ?? ((signal: AbortSignal) => readDevices({ ...opts.readOptions, signal }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<unknown> = Promise.resolve();
  let active = true;

  const tick = (): void => {
    timer = undefined;
    if (!active) return;
    const started = Date.now();
    inFlight = Promise.resolve()
      .then(() => read(controller.signal))
      .then(
        (reading) => {
          if (active) opts.onReading(reading);
        },
        () => {
          /* readDevices never throws; if a custom read does, skip this round */
        },
      )
      .then(() => allExited())
      .finally(() => {
        if (active) timer = setTimeout(tick, Math.max(0, intervalMs - (Date.now() - started)));
      });
  };
  tick();

  return {
    stop(): void {
      if (!active) return;
      active = false;
      if (timer) clearTimeout(timer);
      controller.abort();
    },
    get stopped(): Promise<void> {
      return inFlight.then(
        () => undefined,
        () => undefined,
      );
    },
  };
}
