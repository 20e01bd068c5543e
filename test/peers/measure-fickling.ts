// The issue's goal figures on fickling's own test samples (trailofbits/fickling, test/*.py), which
// are built in Python by its tests rather than kept as files: test/peers/fickling_samples.py runs
// fickling's analysing tests from a bare mirror of its repository and writes every pickle they
// check, labelled by what the tests assert, into a temp folder. Nothing of fickling's is committed.
//
//   node --import tsx test/peers/measure-fickling.ts [MIRROR_GIT_DIR]
//
// MIRROR_GIT_DIR defaults to /work/.mirror/trailofbits+fickling/repo (the `fetch` tool's copy);
// without it the script says so and exits 0. Needs .venv-torch2's python (any python ≥ 3.10 would do).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanFile } from '../../main/checkpoint/scan/scan-file.ts';

const REPO = join(import.meta.dirname, '..', '..');
const mirror = process.argv[2] ?? '/work/.mirror/trailofbits+fickling/repo';
const python = join(REPO, '.venv-torch2', 'bin', 'python');
if (!existsSync(mirror) || !existsSync(python)) {
  console.log(`# skip: ${existsSync(mirror) ? python : `no fickling mirror at ${mirror}`} is missing; nothing measured`);
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'ckpt-fickling-'));
try {
  // the bare mirror may lack its large files (a TorchScript model): only the code and tests are taken
  const tar = spawnSync('git', ['--git-dir', mirror, 'archive', 'HEAD', 'fickling', 'test', ':(exclude)test/fixtures/*.pt'], { maxBuffer: 256 << 20 });
  if (tar.status !== 0) throw new Error(`git archive: ${tar.stderr.toString().slice(-400)}`);
  spawnSync('tar', ['-x', '-C', work], { input: tar.stdout });
  const samples = join(work, 'samples');
  const h = spawnSync(python, [join(REPO, 'test', 'peers', 'fickling_samples.py'), work, samples], { cwd: work, encoding: 'utf8', timeout: 900_000 });
  if (h.status !== 0) throw new Error(`fickling_samples.py: ${h.stderr.slice(-800)}`);
  const labels = JSON.parse(readFileSync(join(samples, 'labels.json'), 'utf8')) as {
    file: string;
    test: string;
    label: 'malicious' | 'benign';
    live: boolean;
  }[];
  const rows = labels.map((l) => {
    let verdict = 'none';
    try {
      verdict = scanFile(join(samples, l.file)).verdict;
    } catch (e) {
      verdict = `none (${(e as Error).message.slice(0, 80)})`;
    }
    return { ...l, verdict };
  });
  const mal = rows.filter((r) => r.label === 'malicious');
  const live = mal.filter((r) => r.live);
  const benign = rows.filter((r) => r.label === 'benign');
  const pct = (n: number, d: number): string => (d ? `${((100 * n) / d).toFixed(1)}% (${n}/${d})` : 'n/a');
  const missed = mal.filter((r) => r.verdict === 'safe' || r.verdict === 'benign');
  const none = rows.filter((r) => r.verdict.startsWith('none'));
  const liveMissed = live.filter((r) => r.verdict !== 'dangerous');
  const benignFlagged = benign.filter((r) => r.verdict === 'dangerous');
  console.log(
    `fickling ${spawnSync('git', ['--git-dir', mirror, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim()}: ${rows.length} samples, ${mal.length} malicious (${live.length} live), ${benign.length} benign`,
  );
  console.log(`malicious called safe or benign   ${missed.length}`);
  console.log(`without a verdict                 ${none.length}`);
  console.log(`live payloads called dangerous    ${pct(live.length - liveMissed.length, live.length)}`);
  console.log(`malicious called dangerous        ${pct(mal.filter((r) => r.verdict === 'dangerous').length, mal.length)}`);
  console.log(`benign called dangerous           ${pct(benignFlagged.length, benign.length)}`);
  for (const r of [...missed, ...none, ...liveMissed.filter((x) => !missed.includes(x) && !none.includes(x)), ...benignFlagged])
    console.log(`  ${r.label}${r.live ? ' (live)' : ''} → ${r.verdict}: ${r.test}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
