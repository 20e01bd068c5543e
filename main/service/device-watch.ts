/**
 * Devices for the API: fresh readings on request, a recent one for device plans, and the live
 * poller of the Devices view, running while at least one client watches (and anyone listens).
 */
import type { DeviceReading } from '../../shared/devices.ts';
import { startDevicePoller, type DevicePoller } from '../devices/poller.ts';
import { readDevices } from '../devices/read-devices.ts';

export type ReadFn = (signal?: AbortSignal) => Promise<DeviceReading>;

/** A reading younger than this serves a device plan. */
const FRESH_MS = 10_000;

export class DeviceWatch {
  private watchers = 0;
  private poller: DevicePoller | null = null;
  private last: { reading: DeviceReading; at: number } | null = null;
  private readonly read: ReadFn;

  constructor(
    private readonly onReading: (r: DeviceReading) => void,
    read?: ReadFn,
    private readonly intervalMs = 2000,
  ) {
    this.read = read ?? ((signal) => readDevices({ timeoutMs: 3000, ...(signal ? { signal } : {}) }));
  }

  async readNow(): Promise<DeviceReading> {
    const reading = await this.read();
    this.last = { reading, at: Date.now() };
    return reading;
  }

  async recent(): Promise<DeviceReading> {
    return this.last && Date.now() - this.last.at < FRESH_MS ? this.last.reading : this.readNow();
  }

  get watching(): boolean {
    return this.poller !== null;
  }

  /** Counts clients: the poller runs from the first `true` until as many `false`s. */
  watch(on: boolean): void {
    this.watchers = Math.max(0, this.watchers + (on ? 1 : -1));
    if (this.watchers > 0 && !this.poller) {
      this.poller = startDevicePoller({
        intervalMs: this.intervalMs,
        read: (signal) => this.read(signal),
        onReading: (reading) => {
          this.last = { reading, at: Date.now() };
          this.onReading(reading);
        },
      });
    } else if (this.watchers === 0) this.stopPoller();
  }

  /** Nobody is left to receive readings (every event listener went away): stop, forget the count. */
  reset(): void {
    this.watchers = 0;
    this.stopPoller();
  }

  private stopPoller(): void {
    this.poller?.stop();
    this.poller = null;
  }

  async close(): Promise<void> {
    const p = this.poller;
    this.reset();
    await p?.stopped;
  }
}
