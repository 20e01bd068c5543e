import { spawn } from 'node:child_process';
import { CLI } from './run-cli.ts';

/**
 * Runs the built CLI until it says it paused at `step` (CKPT_TEST_PAUSE_AT, main/io/test-pause.ts),
 * then SIGKILLs it there. Rejects when it never pauses within 30 s or ends by itself.
 */
export function killAt(step: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env, CKPT_TEST_PAUSE_AT: step } });
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`never paused at ${step}: ${err}`));
    }, 30_000);
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      if (err.includes(`ckpt-test: paused at ${step}`)) child.kill('SIGKILL');
    });
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && err.includes('paused at')) resolve();
      else reject(new Error(`${step}: the run ended by itself (${signal ?? _code}): ${err}`));
    });
  });
}
