// One walk: the torch zip reader feeds the security scan while it unpickles data.pkl, and the
// file's scan reuses that result instead of walking the pickle again. The verdict must be exactly
// what the scan alone says, on every real file that the reader opens: the security corpus (real
// torch 2.13 output with payloads), the torch fixtures and the real corpus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scanFile } from '../../../../main/checkpoint/scan/scan-file.ts';
import { openFormat } from '../../../../main/formats/open-format.ts';
import { PrescannedPickles } from '../../../../main/formats/torch/torch-zip.ts';
import { ZipArchive } from '../../../../main/formats/zip/zip.ts';
import { FileReader } from '../../../../main/io/random-access.ts';
import { REPO } from '../../../helpers/run-cli.ts';
import { CORPUS_DIR, sharedSkipReason } from '../../../helpers/shared-dir.ts';

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => statSync(f).isFile() && statSync(f).size < 64 << 20);
}

/** The reader's scans of a file, or null when the reader refuses it (then nothing is reused). */
function readerScans(file: string): PrescannedPickles | null {
  const scans = new PrescannedPickles();
  try {
    openFormat(file, { scans }).close();
  } catch {
    return null;
  }
  return scans;
}

const FILES = [
  ...filesUnder(join(REPO, 'test', 'fixtures', 'security')),
  ...filesUnder(join(REPO, 'test', 'fixtures', 'torch')),
  ...filesUnder(join(REPO, 'test', 'fixtures', 'torch2')),
  ...(sharedSkipReason() === null ? filesUnder(CORPUS_DIR) : []),
];

test('the scan made during unpickling equals the scan of the file alone, on every torch zip the reader opens', () => {
  let compared = 0;
  const verdicts = new Set<string>();
  for (const file of FILES) {
    const scans = readerScans(file);
    if (!scans || scans.size === 0) continue;
    const alone = scanFile(file);
    assert.deepEqual(scanFile(file, scans), alone, file);
    compared++;
    verdicts.add(alone.verdict);
  }
  console.log(`compared ${compared} files`);
  assert.ok(compared >= 20, `compared ${compared} files`);
  assert.ok(verdicts.has('dangerous') && verdicts.has('safe'), `verdicts seen: ${[...verdicts].join(', ')}`);
});

test('the file scan uses the reader scan instead of walking data.pkl again', () => {
  const file = join(REPO, 'test', 'fixtures', 'security', 'evil', 'torch_zip_system.pt');
  const scans = readerScans(file)!;
  assert.equal(scans.size, 1);
  assert.equal(scanFile(file, scans).verdict, 'dangerous');
  // a stand-in with no findings: had the pickle been walked again, os.system would still show
  const zip = ZipArchive.open(new FileReader(file));
  const record = zip.entries.find((e) => e.name.endsWith('/data.pkl'))!;
  zip.reader.close();
  const real = scans.get(record)!;
  scans.set(record, { ...real, findings: [], weightsOnly: new Map([...real.weightsOnly.keys()].map((t) => [t, null])), unsupported: [] });
  assert.equal(scanFile(file, scans).verdict, 'safe');
});

test("the file scan reads the zip directory the reader parsed, through its own reader, even after the reader's is closed", () => {
  const file = join(REPO, 'test', 'fixtures', 'security', 'evil', 'duplicate_data_pkl_first.pt');
  const scans = readerScans(file)!;
  const open = ZipArchive.open;
  let parsed = 0;
  ZipArchive.open = (...args: Parameters<typeof open>) => {
    parsed++;
    return open(...args);
  };
  try {
    const report = scanFile(file, scans);
    assert.equal(parsed, 0);
    // the first (unreached) data.pkl holds the payload; torch reads the last, clean one
    assert.equal(report.verdict, 'dangerous');
    assert.ok(report.notes?.some((n) => n.includes('two records are named archive/data.pkl')));
  } finally {
    ZipArchive.open = open;
  }
});
