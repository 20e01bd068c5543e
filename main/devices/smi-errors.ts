/**
 * The states of a machine where nvidia-smi cannot list GPUs, recognised from its own words
 * (see test/fixtures/nvidia-smi/error-*.txt for the real texts). None of them is a failure of
 * this app: each becomes a reading with a one-line message.
 */
import type { DeviceReason, DeviceStatus } from '../../shared/devices.ts';
import { firstLine } from './text.ts';

export interface SmiState {
  status: DeviceStatus;
  reason: DeviceReason;
  message: string;
}

/**
 * Recognises a known nvidia-smi failure text in its output (stdout and stderr together).
 * Returns null when the text is none of them.
 */
export function recogniseSmiFailure(output: string): SmiState | null {
  if (/couldn't communicate with the NVIDIA driver/i.test(output)) {
    return {
      status: 'error',
      reason: 'driver-unreachable',
      message:
        'The NVIDIA driver is not running (nvidia-smi: "couldn\'t communicate with the NVIDIA driver"); CUDA is unavailable until it is installed and loaded.',
    };
  }
  if (/Driver\/library version mismatch/i.test(output)) {
    return {
      status: 'error',
      reason: 'driver-library-mismatch',
      message:
        'The loaded NVIDIA kernel driver and its user-space library differ (NVML: Driver/library version mismatch), usually after a driver update; CUDA is unavailable until a reboot or driver reload.',
    };
  }
  if (/No devices were found/i.test(output)) {
    return { status: 'ok', reason: 'no-devices', message: 'nvidia-smi found no NVIDIA GPU ("No devices were found"); CUDA will see no device.' };
  }
  const handle = /Unable to determine the device handle for (?:GPU\s*)?([0-9A-Fa-f:.]+):\s*(.+)/.exec(output);
  if (handle) {
    return {
      status: 'error',
      reason: 'device-handle',
      message: `nvidia-smi cannot reach the GPU at ${handle[1]} (${handle[2]!.trim()}); the GPU or its driver is in a bad state, which usually needs a reboot.`,
    };
  }
  const nvml = /Failed to initialize NVML:\s*(.+)/.exec(output);
  if (nvml) {
    return { status: 'error', reason: 'nvml-init', message: `nvidia-smi could not start NVML (${nvml[1]!.trim()}); CUDA is most likely unavailable too.` };
  }
  if (/NVIDIA-SMI has failed/i.test(output)) {
    return { status: 'error', reason: 'exit-nonzero', message: firstLine(output, 200) };
  }
  return null;
}

/** The state for a non-zero exit whose text we do not recognise. */
export function exitState(code: number | null, output: string): SmiState {
  const said = firstLine(output);
  return {
    status: 'error',
    reason: 'exit-nonzero',
    message: `nvidia-smi exited with code ${code ?? '?'}${said ? `: ${said}` : ' and printed nothing'}.`,
  };
}
