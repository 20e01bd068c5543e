// Shared by the device tests: the real nvidia-smi captures in test/fixtures/nvidia-smi/ (see
// SOURCES.tsv there) and a fake `nvidia-smi` bash script put first on PATH.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QUERY_GPU_FIELDS } from '../../../main/devices/parse-query.ts';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/nvidia-smi/', import.meta.url));

export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

/** The same text with Windows line ends, as nvidia-smi.exe writes them. */
export function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/**
 * Derives, from a real `--format=csv` capture with a header and units, exactly what our own
 * query (`--query-gpu=<QUERY_GPU_FIELDS> --format=csv,noheader,nounits`) prints on that machine:
 * the same values, picked in our field order, without units.
 */
export function asOurQuery(captureWithHeader: string): string {
  const [head, ...rows] = captureWithHeader.split(/\r?\n/).filter((l) => l.trim());
  const names = head!.split(',').map((c) => c.trim().replace(/\s*\[[^\]]*\]$/, ''));
  return (
    rows
      .map((row) => {
        const cells = row.split(',').map((c) => c.trim());
        return QUERY_GPU_FIELDS.map((f) => {
          const v = cells[names.indexOf(f)];
          if (v === undefined) throw new Error(`capture lacks ${f}`);
          return v.replace(/\s+(MiB|W|%)$/, '');
        }).join(', ');
      })
      .join('\n') + '\n'
  );
}

export interface FakeSmi {
  dir: string;
  /** env with the fake first on PATH. */
  env: NodeJS.ProcessEnv;
  /** One line per call: the arguments as the fake received them. */
  calls(): string[];
  cleanup(): void;
}

/**
 * Writes a bash script named nvidia-smi into a new temp folder. `body` runs after the call is
 * logged; $F is the fixtures folder and $DIR the temp folder.
 */
export function fakeSmi(body: string): FakeSmi {
  const dir = mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-'));
  const script = join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/bash\nDIR='${dir}'\nF='${FIXTURES}'\nprintf '%s\\n' "$*" >> "$DIR/calls.log"\n${body}\n`);
  chmodSync(script, 0o755);
  return {
    dir,
    env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, CUDA_VISIBLE_DEVICES: undefined, CUDA_DEVICE_ORDER: undefined },
    calls: () => {
      try {
        return readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').slice(0, -1);
      } catch {
        return [];
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A fake serving the H100 (MIG) machine of the nvidia_gpu_exporter capture: query-gpu, topo -m
 * and the table are the real captured outputs. No --query-compute-apps capture exists, so the
 * fake prints that query's rows derived from the same capture's table Processes section.
 */
export const H100_MACHINE = `case "$1" in
  --query-gpu=*) cat "$F/query-gpu-h100-80gb-hbm3-mig-1.csv" ;;
  --query-compute-apps=*) printf '%s\\n' 'GPU-00000000-0000-0000-0000-000000000000, 21180, /root/tools/memhog, 2296' 'GPU-00000000-0000-0000-0000-000000000000, 21181, /root/tools/memhog, 1272' 'GPU-00000000-0000-0000-0000-000000000000, 21198, ./gpu_burn, 7484' ;;
  topo) cat "$F/topo-h100-80gb-hbm3-1.txt" ;;
  "") cat "$F/table-h100-80gb-hbm3-mig-1.txt" ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 99 ;;
esac`;
