import * as fs from 'node:fs';
import * as os from 'node:os';
import type { PyValue } from '../formats/values/python-values.ts';
import { tailSha256 } from '../io/tail-hash.ts';
import { releaseReadBack } from '../io/byte-verifier.ts';
import { StorageReadBack } from './storage-read-back.ts';
import { verifyOutput } from './read-back.ts';
import type { OutputResult } from './read-back-match.ts';
import { writeTorchCheckpoint, type WriteOptions } from './write-checkpoint.ts';

/**
 * Is the file already at `file` exactly what this conversion would write? The writer is
 * deterministic (zip times are 0, keys follow pickling order), so the conversion is run into the
 * null device to learn the expected size, central directory and storage CRCs; the file on disk
 * must have the same size and tail, and then passes the same check as a fresh output: every
 * tensor re-read and every storage's bytes read back against the source's CRC-32.
 *
 * A batch re-run uses this for an output no journal records (written by a run that was killed
 * between publishing and recording it, or by an earlier version), so it is kept, not redone.
 * Returns its report (adopted), or null when it is something else.
 */
export async function verifyExistingOutput(
  file: string,
  tree: PyValue,
  opts: Pick<WriteOptions, 'archiveName' | 'location' | 'checkCancelled' | 'onWeightsOnlyRefusal'>,
): Promise<OutputResult | null> {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return null;
    size = st.size;
  } catch {
    return null;
  }
  const sink = fs.openSync(os.devNull, 'w');
  let expected: ReturnType<typeof writeTorchCheckpoint>;
  try {
    expected = writeTorchCheckpoint(sink, tree, opts);
  } finally {
    fs.closeSync(sink);
  }
  if (expected.bytes !== size || tailSha256(file, expected.tail.bytes) !== expected.tail.sha256) return null;
  const readBack = new StorageReadBack();
  for (const w of expected.storages) readBack.add(file, w);
  try {
    const report = await verifyOutput(file, file, tree, expected.storages, opts.location, readBack);
    return report.verified ? { ...report, tail: expected.tail, adopted: true } : null;
  } finally {
    releaseReadBack(file);
  }
}
