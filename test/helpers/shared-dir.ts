import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** `../shared` beside the repository: the real-world corpus and nvidia-smi captures. */
export const SHARED_DIR = join(fileURLToPath(new URL('../../', import.meta.url)), '..', 'shared');
export const CORPUS_DIR = join(SHARED_DIR, 'corpus', 'real');

/**
 * Why a test that needs ../shared cannot run, or null when it can. In CI the folder is always
 * present, so its absence there is a failure, not a skip.
 */
export function sharedSkipReason(dir = CORPUS_DIR): string | null {
  if (existsSync(dir)) return null;
  if (process.env['CI'] === 'true') throw new Error(`${dir} is missing; CI always provides ../shared`);
  const reason = `${dir} is not present in this checkout; skipping (CI always runs this)`;
  console.log(`# skip: ${reason}`);
  return reason;
}

/** The real DeepSpeed ZeRO checkpoints (stages 1-3, fp32 and bf16) with their zero_to_fp32 references. */
export const DEEPSPEED_DIR = join(SHARED_DIR, 'corpus', 'deepspeed');

/** The corpus's variant folders (`stage2-ws2-bf16`, …), sorted; none when the corpus is absent. */
export function deepSpeedVariants(): string[] {
  if (!existsSync(DEEPSPEED_DIR)) return [];
  return readdirSync(DEEPSPEED_DIR)
    .filter((n) => /^stage\d-ws\d+-/.test(n))
    .sort();
}
