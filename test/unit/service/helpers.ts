import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_METHODS, type ApiEvent } from '../../../shared/api.ts';
import { unwrapResult } from '../../../shared/web-transport.ts';
import { callMethod } from '../../../main/service/call-method.ts';
import type { ApiService } from '../../../main/service/service.ts';
import { NO_RULES, type ConversionRules } from '../../../shared/presets.ts';

export const SAMPLE = fileURLToPath(new URL('../../../build/sample-workspace/', import.meta.url)).replace(/\/$/, '');
export const DP = path.join(SAMPLE, 'digits-cnn', 'dp.pt');
export const CPU_RULES: ConversionRules = { ...NO_RULES, preset: { name: 'cpu' } };

/**
 * The service as the UI reaches it: every call goes through the transports' entrance
 * (`callMethod`, as IPC and HTTP do), which checks its arguments, and a failure comes back as
 * the `ApiError` the clients throw.
 */
export function throughTransport(service: ApiService): ApiService {
  const api: Record<string, unknown> = { onEvent: service.onEvent, close: () => service.close() };
  for (const m of API_METHODS) api[m] = async (...args: unknown[]) => unwrapResult(await callMethod(service, m, args));
  return api as unknown as ApiService;
}

export const tempDir = (name: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `ckpt-${name}-`));

/**
 * A safetensors file of `bytes` zero bytes of float32 in two tensors, written sparse (instant
 * to create), large enough that converting it takes a while: for cancelling mid-way.
 */
export function bigSafetensors(file: string, bytes = 256 << 20): string {
  const half = Math.floor(bytes / 8) * 4;
  const header = {
    'a.weight': { dtype: 'F32', shape: [half / 4], data_offsets: [0, half] },
    'b.weight': { dtype: 'F32', shape: [half / 4], data_offsets: [half, 2 * half] },
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  fs.ftruncateSync(fd, 8 + json.length + 2 * half);
  fs.closeSync(fd);
  return file;
}

/** Collects pushed events and waits for the one a test needs. */
export class EventLog {
  readonly events: ApiEvent[] = [];
  private waiters: { pred: (e: ApiEvent) => boolean; resolve: (e: ApiEvent) => void }[] = [];

  push = (e: ApiEvent): void => {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
  };

  of(job: string): ApiEvent[] {
    return this.events.filter((e) => 'job' in e && e.job === job);
  }

  waitFor(pred: (e: ApiEvent) => boolean, timeoutMs = 30_000): Promise<ApiEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no such event within ${timeoutMs} ms; got ${this.events.map((e) => e.type).join(', ') || 'none'}`)),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** The job's last event: job-done or job-error. */
  end(job: string, timeoutMs?: number): Promise<ApiEvent> {
    return this.waitFor((e) => (e.type === 'job-done' || e.type === 'job-error') && e.job === job, timeoutMs);
  }
}
