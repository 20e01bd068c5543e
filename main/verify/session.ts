/**
 * onnxruntime sessions on the execution provider the options ask for. CUDA is tried when asked
 * (or with `auto`); when its provider library does not load (onnxruntime-node ships only the CPU
 * provider and downloads the CUDA one at install time, for linux x64 with CUDA 12) or the device
 * is not there, the session is made on the CPU and the reason is kept for the report.
 * onnxruntime-node is imported only here and only when a verification runs.
 */
import type { InferenceSession } from 'onnxruntime-node';
import type { ProviderReport } from '../../shared/verify.ts';
import { fail } from '../errors.ts';

type Ort = typeof import('onnxruntime-node');
let ortPromise: Promise<Ort> | null = null;

export function loadOrt(): Promise<Ort> {
  ortPromise ??= import('onnxruntime-node')
    .then((ort) => {
      // The failed CUDA attempt logs at error level on stderr; the exception carries the same text.
      ort.env.logLevel = 'fatal';
      return ort;
    })
    .catch((e: Error) => {
      ortPromise = null;
      return fail('unsupported', `onnxruntime-node does not load on this machine (${e.message.split('\n')[0]}); reinstall the app's dependencies`);
    });
  return ortPromise;
}

export interface DeviceRequest {
  text: string;
  /** null: CPU only */
  cuda: number | null;
  /** true when CUDA is only a preference (`auto`) */
  optional: boolean;
}

export function parseDevice(text = 'auto'): DeviceRequest {
  const t = text.trim().toLowerCase();
  if (t === 'auto') return { text: t, cuda: 0, optional: true };
  if (t === 'cpu') return { text: t, cuda: null, optional: false };
  const m = /^(?:cuda|gpu)(?::(\d+))?$/.exec(t);
  if (m) return { text: t, cuda: Number(m[1] ?? 0), optional: false };
  return fail('usage', `--device takes cpu, cuda, cuda:N or auto, not '${text}'`);
}

export interface Sessions {
  provider: ProviderReport;
  create(model: Uint8Array): Promise<InferenceSession>;
}

/** Decides the provider with the first model and makes every later session the same way. */
export async function sessionsFor(device: DeviceRequest, first: Uint8Array): Promise<{ sessions: Sessions; firstSession: InferenceSession }> {
  const ort = await loadOrt();
  // Two sessions take turns batch by batch; idle intra-op threads that keep spinning would slow the other one.
  const base: InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  let fallback: string | null = null;
  let providers: InferenceSession.SessionOptions['executionProviders'] = ['cpu'];
  let onCuda = false;
  let firstSession: InferenceSession | null = null;
  if (device.cuda !== null) {
    const cuda = [{ name: 'cuda' as const, deviceId: device.cuda }];
    try {
      firstSession = await ort.InferenceSession.create(first, { ...base, logSeverityLevel: 4, executionProviders: cuda });
      providers = cuda;
      onCuda = true;
    } catch (e) {
      fallback = cudaReason((e as Error).message);
    }
  }
  const create = async (model: Uint8Array): Promise<InferenceSession> => {
    try {
      return await ort.InferenceSession.create(model, { ...base, executionProviders: providers });
    } catch (e) {
      return fail('unsupported', `onnxruntime cannot load the graph: ${(e as Error).message.split('\n')[0]}`);
    }
  };
  firstSession ??= await create(first);
  return {
    firstSession,
    sessions: {
      provider: {
        requested: device.text,
        used: onCuda ? 'cuda' : 'cpu',
        deviceId: onCuda ? device.cuda : null,
        fallback,
        onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
      },
      create,
    },
  };
}

function cudaReason(message: string): string {
  const first = message.split('\n')[0]!.trim();
  if (/Failed to load shared library|providers_cuda|providers_shared/i.test(first)) {
    return `the CUDA execution provider is not installed with onnxruntime-node (${first}); install it with ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node, or run on the CPU`;
  }
  return `CUDA could not be used (${first})`;
}
