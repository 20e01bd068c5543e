/**
 * The Node side of verify-runner.py: starts the user's Python with the runner, speaks its JSON-lines
 * protocol (version 2; a line with `bytes` is followed by that many raw bytes): samples go a chunk
 * at a time, and the runner answers each batch of a chunk with its logits. Every failure becomes a CheckpointError of one line: the runner's own errors keep the
 * user's traceback under `details`; a runner that dies or stops answering is killed and reported
 * with the end of its stderr. Nothing waits forever: each request has a time limit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CheckpointError, fail } from '../errors.ts';

export const RUNNER_PROTOCOL = 2;

export interface RunnerHello {
  protocol: number;
  python: string;
  executable: string;
  torch: string;
  cuda: string[];
}

export interface LoadRequest {
  label: string;
  file: string;
  /** keys leading from the loaded object to the model's state dict (`['model']`) */
  path: (string | number)[];
  /** wrapper prefixes removed from every key, outermost first */
  strip: string[];
  device: string | null;
  modelClass: string;
  modelArgs: Record<string, unknown>;
}

export interface Loaded {
  label: string;
  keys: number;
  device: string;
  deviceName: string;
  /** seconds since the epoch when the runner had the model in (absent from older runners) */
  sentAt?: number;
}

export interface BatchLogits {
  shape: number[];
  seconds: number;
  logits: Float32Array;
}

export interface RunnerLimits {
  /** spawning Python and importing torch */
  startMs: number;
  /** importing the model, constructing it, loading a checkpoint */
  loadMs: number;
  /** one batch through every model (from the previous batch's logits) */
  batchMs: number;
}

export const DEFAULT_LIMITS: RunnerLimits = { startMs: 120_000, loadMs: 300_000, batchMs: 600_000 };

interface Message {
  type: string;
  [k: string]: unknown;
  payload?: Buffer;
}

/** Where the runner script is: beside this module in the source tree and in dist/ (unpacked from the app's asar archive). */
export function runnerScript(): string {
  const file = fileURLToPath(new URL('./verify-runner.py', import.meta.url)).replace(/app\.asar([\\/])/, 'app.asar.unpacked$1');
  if (!fs.existsSync(file)) fail('internal', `the Python runner ${file} is missing from this install; rebuild (npm run build)`);
  return file;
}

export class PythonRunner {
  private readonly child: ChildProcess;
  private buf: Buffer = Buffer.alloc(0);
  private pendingPayload: Message | null = null;
  private inbox: Message[] = [];
  private wake: (() => void) | null = null;
  private exited: string | null = null;
  private stderrTail = '';
  hello: RunnerHello | null = null;
  /** seconds from spawn to the runner's hello (Python started, torch imported), as the runner sent it */
  startSeconds = 0;

  private constructor(
    readonly python: string,
    private readonly limits: RunnerLimits,
    private readonly onStage: (stage: string) => void,
  ) {
    this.child = spawn(python, ['-u', runnerScript()], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
    });
    this.child.stdout!.on('data', (d: Buffer) => this.receive(d));
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-8000);
    });
    this.child.stdin!.on('error', () => undefined); // a dead runner is reported through 'exit'
    this.child.on('error', (e: NodeJS.ErrnoException) =>
      this.ended(e.code === 'ENOENT' ? `${python}: no such interpreter (--python names a python executable)` : `${python} could not be started: ${e.message}`),
    );
    this.child.on('exit', (code, signal) =>
      this.ended(signal ? `the Python runner (${python}) was killed by ${signal}` : `the Python runner (${python}) exited with code ${code}`),
    );
  }

  /**
   * Starts the runner and checks the protocol; `onStage` hears its progress lines. Aborting
   * `signal` kills the runner, even while it is still importing torch.
   */
  static async start(
    python: string,
    onStage: (stage: string) => void = () => undefined,
    limits: RunnerLimits = DEFAULT_LIMITS,
    signal?: AbortSignal,
  ): Promise<PythonRunner> {
    const spawnedAt = Date.now();
    const t0 = performance.now();
    const r = new PythonRunner(python, limits, onStage);
    if (signal?.aborted) r.kill();
    else signal?.addEventListener('abort', () => r.kill(), { once: true });
    try {
      const m = await r.request({ op: 'hello', protocol: RUNNER_PROTOCOL }, 'hello', limits.startMs, 'starting Python and importing torch');
      r.hello = m as unknown as RunnerHello;
      // by the runner's clock when it answered: this side may have been busy (reading the test set)
      // when the answer came. Two clocks (Python's time.time, Node's Date.now in whole ms) can
      // disagree by a fraction of a millisecond: never longer than this side saw it take.
      const sentAt = m['sentAt'];
      const seen = (performance.now() - t0) / 1000;
      r.startSeconds = typeof sentAt === 'number' && sentAt * 1000 >= spawnedAt ? Math.min(sentAt - spawnedAt / 1000, seen) : seen;
      return r;
    } catch (e) {
      r.kill();
      throw e;
    }
  }

  async load(req: LoadRequest): Promise<Loaded> {
    return (await this.request({ op: 'load', ...req }, 'loaded', this.limits.loadMs, `loading ${req.file} into ${req.modelClass}`)) as unknown as Loaded;
  }

  /**
   * Sends a chunk of samples (`shape[0]` of them) to go through the models `labels` names, in
   * batches of `batch`, without waiting for the logits: the next chunk can be read and sent while
   * the runner computes. The runner answers batch by batch, in order; take each batch's logits
   * with `results`. `input` must not be changed afterwards: the pipe may still hold it.
   */
  submit(labels: string[], shape: number[], batch: number, input: Float32Array): void {
    const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    this.send({ op: 'run', labels, shape, batch, bytes: bytes.length }, bytes);
  }

  /** The logits of the oldest batch of `size` samples submitted and not yet taken. */
  async results(labels: string[], size: number): Promise<Map<string, BatchLogits>> {
    const out = new Map<string, BatchLogits>();
    const deadline = Date.now() + this.limits.batchMs;
    for (const label of labels) {
      const m = await this.next('logits', deadline, `a batch of ${size}`);
      const p = m.payload!;
      const copy = new Uint8Array(p.length);
      copy.set(p);
      out.set(label, { shape: m['shape'] as number[], seconds: m['seconds'] as number, logits: new Float32Array(copy.buffer) });
    }
    return out;
  }

  /** Asks the runner to exit; kills it when it does not within a second. */
  async close(): Promise<void> {
    if (this.exited) return;
    try {
      this.send({ op: 'exit' });
      this.child.stdin!.end();
    } catch {
      // already gone
    }
    const done = new Promise<void>((res) => this.child.once('exit', () => res()));
    const timer = setTimeout(() => this.kill(), 1000);
    await done;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private send(obj: Record<string, unknown>, payload?: Buffer): void {
    if (this.exited) throw this.deadError('');
    const stdin = this.child.stdin!;
    // the line and its payload leave in one writev, without copying a chunk of samples (megabytes) into one buffer
    stdin.cork();
    stdin.write(`${JSON.stringify(obj)}\n`);
    if (payload) stdin.write(payload);
    stdin.uncork();
  }

  private async request(obj: Record<string, unknown>, want: string, ms: number, what: string): Promise<Message> {
    this.send(obj);
    return this.next(want, Date.now() + ms, what);
  }

  /** The next message of type `want`, passing progress lines on; errors and deaths throw. */
  private async next(want: string, deadline: number, what: string): Promise<Message> {
    for (;;) {
      const m = this.inbox.shift();
      if (m) {
        if (m.type === 'progress') {
          this.onStage(String(m['stage']));
          continue;
        }
        if (m.type === 'error') throw new CheckpointError('python', String(m['message']), undefined, String(m['details'] ?? '') || undefined);
        if (m.type !== want) {
          this.kill();
          fail('python', `the Python runner answered ${m.type} where ${want} was expected; the runner and the app do not match`);
        }
        return m;
      }
      if (this.exited) throw this.deadError(what);
      const left = deadline - Date.now();
      if (left <= 0) {
        this.kill();
        fail('python', `the Python runner (${this.python}) did not finish ${what} in time; it was stopped`);
      }
      await new Promise<void>((res) => {
        const timer = setTimeout(res, left);
        this.wake = () => {
          clearTimeout(timer);
          res();
        };
      });
      this.wake = null;
    }
  }

  private deadError(what: string): CheckpointError {
    const tail = this.stderrTail.trim();
    const last = tail.split('\n').pop() ?? '';
    return new CheckpointError(
      'python',
      `${this.exited}${what ? ` while ${what}` : ''}${last ? ` (${last.slice(0, 200)})` : ''}`,
      undefined,
      tail || undefined,
    );
  }

  private ended(why: string): void {
    if (this.exited) return;
    this.exited = why;
    this.wake?.();
  }

  private receive(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.pendingPayload) {
        const n = this.pendingPayload['bytes'] as number;
        if (this.buf.length < n) break;
        this.pendingPayload.payload = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        this.inbox.push(this.pendingPayload);
        this.pendingPayload = null;
        continue;
      }
      const nl = this.buf.indexOf(10);
      if (nl < 0) break;
      const line = this.buf.subarray(0, nl).toString('utf8');
      this.buf = this.buf.subarray(nl + 1);
      let m: Message;
      try {
        m = JSON.parse(line) as Message;
      } catch {
        this.inbox.push({ type: 'error', message: `the Python runner wrote a line that is not the protocol's: ${line.slice(0, 120)}` });
        continue;
      }
      if (typeof m['bytes'] === 'number') this.pendingPayload = m;
      else this.inbox.push(m);
    }
    this.wake?.();
  }
}
