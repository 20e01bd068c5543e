// A fake `nvidia-smi` for the browser tests: the real `nvidia-smi topo -m` capture of an 8× A100-SXM4-40GB
// box (test/fixtures/nvidia-smi/topo-a100-sxm4-40gb-8-nic.txt), with N/A for every number the
// capture does not state, as nvidia-smi prints N/A. Not a test file.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, tempDir } from './helpers.ts';

const FIXTURES = join(REPO, 'test', 'fixtures', 'nvidia-smi');

/** A folder holding a fake nvidia-smi for the 8-GPU A100 machine. */
export function fakeA100(): string {
  const dir = tempDir('fake-smi');
  mkdirSync(dir, { recursive: true });
  const na = Array(8).fill('[N/A]').join(', ');
  const rows = Array.from({ length: 8 }, (_, i) => `${i}, [N/A], NVIDIA A100-SXM4-40GB, ${na}, 525.125.06`).join('\n');
  writeFileSync(
    join(dir, 'nvidia-smi'),
    `#!/bin/bash
case "$1" in
  --query-gpu=*) printf '%s\\n' '${rows.split('\n').join("' '")}' ;;
  --query-compute-apps=*) ;;
  topo) cat '${join(FIXTURES, 'topo-a100-sxm4-40gb-8-nic.txt')}' ;;
  "") ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 99 ;;
esac
`,
  );
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  return dir;
}

export function serverEnv(fake: string, visible?: string): Record<string, string | undefined> {
  return { PATH: `${fake}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, CUDA_VISIBLE_DEVICES: visible, CUDA_DEVICE_ORDER: undefined };
}
