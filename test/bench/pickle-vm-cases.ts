// The pickle VM's hostile-input cases whose cost the unit tests used to time with wall-clock
// asserts (unpickler-errors.test.ts, pickler-long.test.ts). The unit tests keep asserting what
// each case ends in; how long it takes and how much memory it needs is this benchmark's job.
// Run one case in its own process: `node --import tsx test/bench/pickle-vm-cases.ts NAME`.
import { pickleValue } from '../../main/formats/pickle/pickler.ts';
import { PickleInput } from '../../main/formats/pickle/pickle-input.ts';
import { unpickle } from '../../main/formats/pickle/unpickler.ts';
import { PyTuple } from '../../main/formats/values/python-values.ts';
import { b, expectCheckpointError, run, TRUNCATE_EVERY_BYTE, vectorBytes } from '../unit/formats/pickle/helpers.ts';

const MALFORMED = ['truncated', 'bad-pickle'];
const TOO_DEEP = /nested more than 1000 levels deep/;
const N = 100_000;
const WIDE = 300_000;

/** How many truncated inputs the cut-every-byte case reads: one per byte of each vector. */
export const CUTS = TRUNCATE_EVERY_BYTE.reduce((n, f) => n + vectorBytes(f).length, 0);

/** name → [what it is, the case; each throws unless the VM ends the way the unit test asserts] */
export const PICKLE_VM_CASES: Record<string, [string, () => void]> = {
  startup: ['node + tsx start-up and loading the VM (subtracted from nothing; shown for scale)', () => undefined],
  'cut-every-byte': [
    `${TRUNCATE_EVERY_BYTE.length} vectors cut at every byte (${CUTS} truncated inputs)`,
    () => {
      for (const file of TRUNCATE_EVERY_BYTE) {
        const bytes = vectorBytes(file);
        for (let n = 0; n < bytes.length; n++) expectCheckpointError(() => run(bytes.subarray(0, n), {}, file), MALFORMED);
      }
    },
  ],
  'million-stack-items': [
    '1,000,001 NONEs on the stack',
    () => void expectCheckpointError(() => run(b(`${'N'.repeat(1_000_001)}.`)), ['bad-pickle'], /too deep/),
  ],
  'twenty-million-marks': ['20,000,000 open MARKs', () => void expectCheckpointError(() => run(b(`${'('.repeat(20_000_000)}.`)), ['bad-pickle'], /MARK/)],
  'nested-100k': [
    '100,000-deep lists, tuples, dicts and APPENDs',
    () => {
      expectCheckpointError(() => run(b(`${'('.repeat(N)}${'l'.repeat(N)}.`)), ['bad-pickle'], TOO_DEEP);
      expectCheckpointError(() => run(b(`${'('.repeat(N)}${'t'.repeat(N)}.`)), ['bad-pickle'], TOO_DEEP);
      expectCheckpointError(() => run(b(`${'}K\x00'.repeat(N)}}${'s'.repeat(N)}.`)), ['bad-pickle'], TOO_DEEP);
      expectCheckpointError(() => run(b(`${']'.repeat(N)}${'a'.repeat(N - 1)}.`)), ['bad-pickle'], TOO_DEEP);
    },
  ],
  'memo-self-references': ['l = [l] 100,000 times through the memo', () => void run(b(`]\x94${'h\x00a'.repeat(N)}.`))],
  'wide-300k': [
    '300,000 items in APPENDS, ADDITEMS, SETITEMS, TUPLE, FROZENSET and an object',
    () => {
      for (const s of [
        `](${'N'.repeat(WIDE)}e.`,
        `\x8f(${'N'.repeat(WIDE)}\x90.`,
        `(${'N'.repeat(WIDE)}t.`,
        `(${'N'.repeat(WIDE)}\x91.`,
        `cm\nf\n)R(${'N'.repeat(WIDE)}e.`,
      ])
        run(b(s));
      run(b(`}(J\x00\x00\x00\x00N${'K\x01N'.repeat(WIDE / 2)}u.`));
    },
  ],
  'million-digit-int': [
    'a 1,000,000-digit int encoded (LONG4) and decoded',
    () => {
      const v = 10n ** 1_000_000n - 1n;
      const bytes = pickleValue(v, { storageId: (): PyTuple => new PyTuple([]) });
      if (unpickle(PickleInput.fromBytes(bytes, 'big')).value !== v) throw new Error('the int did not read back');
    },
  ],
};

const name = process.argv[2];
if (name !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  const c = PICKLE_VM_CASES[name];
  if (!c) {
    console.error(`unknown case ${name}; one of ${Object.keys(PICKLE_VM_CASES).join(', ')}`);
    process.exit(2);
  }
  c[1]();
}
