/**
 * Runs nvidia-smi as a child process: execFile (no shell), a hard timeout after which the
 * child is killed with SIGKILL and the call returns at once, and cancellation by AbortSignal.
 * Never throws: every outcome is a value.
 */
import { execFile, type ChildProcess, type ExecFileException } from 'node:child_process';

export const DEFAULT_TIMEOUT_MS = 5000;

export interface RunOptions {
  /** The program to run; default 'nvidia-smi', looked up on env.PATH. */
  binary?: string;
  /** Per command; default 5000 ms. */
  timeoutMs?: number;
  /** Environment for the child and for the PATH lookup; default process.env. */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export type SmiRun =
  | { kind: 'ok'; stdout: string; stderr: string }
  | { kind: 'exit'; code: number | null; signal: string | null; stdout: string; stderr: string }
  | { kind: 'missing'; binary: string }
  | { kind: 'timeout'; timeoutMs: number; pid: number | undefined }
  | { kind: 'cancelled' }
  | { kind: 'spawn-failed'; message: string };

const MAX_OUTPUT = 16 * 1024 * 1024;

// Children not yet gone. A killed nvidia-smi stuck in the driver (uninterruptible sleep) lingers
// until the kernel lets go; the poller waits for this set to empty before starting another.
const live = new Set<Promise<void>>();

/** Resolves once every nvidia-smi this module started has exited. */
export async function allExited(): Promise<void> {
  while (live.size) await Promise.all([...live]);
}

function track(child: ChildProcess): void {
  const gone = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  live.add(gone);
  void gone.then(() => live.delete(gone));
}

export function runNvidiaSmi(args: readonly string[], opts: RunOptions = {}): Promise<SmiRun> {
  const binary = opts.binary ?? 'nvidia-smi';
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signal = opts.signal;
  return new Promise<SmiRun>((resolve) => {
    let settled = false;
    let child: ChildProcess | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (r: SmiRun): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    // Kill the child and stop reading: a grandchild holding the pipes open must not keep us waiting.
    const stop = (): void => {
      if (!child) return;
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    const onAbort = (): void => {
      stop();
      finish({ kind: 'cancelled' });
    };
    if (signal?.aborted) return finish({ kind: 'cancelled' });
    try {
      child = execFile(
        binary,
        [...args],
        { env: opts.env ?? process.env, maxBuffer: MAX_OUTPUT, windowsHide: true, encoding: 'utf8' },
        (err: ExecFileException | null, stdout: string, stderr: string) => {
          if (!err) return finish({ kind: 'ok', stdout, stderr });
          if (err.code === 'ENOENT') return finish({ kind: 'missing', binary });
          if (typeof err.code === 'string') return finish({ kind: 'spawn-failed', message: `${binary}: ${err.code} ${err.message.split('\n')[0]}` });
          finish({ kind: 'exit', code: typeof err.code === 'number' ? err.code : null, signal: err.signal ?? null, stdout, stderr });
        },
      );
    } catch (e) {
      return finish({ kind: 'spawn-failed', message: `${binary}: ${e instanceof Error ? e.message : String(e)}` });
    }
    if (child.pid !== undefined) track(child);
    const pid = child.pid;
    timer = setTimeout(() => {
      stop();
      finish({ kind: 'timeout', timeoutMs, pid });
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
