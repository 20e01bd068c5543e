// A conversion's report crosses from the worker to the main thread packed (its checks and key
// changes as typed arrays and one string each, moved, not copied). What the main thread expands,
// all at once (the service) or a piece at a time (`convert --json`), is byte for byte the JSON of
// the report as the worker made it: real conversions of real torch files, with keys kept,
// renamed and dropped, list indices in tensor paths, and a failed check with its problem.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertFile } from '../../../main/convert/convert-file.ts';
import {
  checksIn,
  keyChangePieces,
  packConversionReport,
  transferListOf,
  unpackConversionReport,
  type PackedConversionReport,
} from '../../../main/convert/packed-report.ts';
import { checksHaveUtf8, checksUtf8, keyChangesHaveUtf8, keyChangeUtf8Pieces } from '../../../main/convert/packed-report-utf8.ts';
import { writeJsonInPieces, type LongList } from '../../../main/cli/json-pieces.ts';
import { NO_RULES, type ConversionRules } from '../../../shared/presets.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-packed-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const CASES: [string, ConversionRules][] = [
  ['nested_containers.pt', { ...NO_RULES, preset: { name: 'cpu' } }],
  ['dp_state_dict.pt', { ...NO_RULES, preset: { name: 'cpu' }, exclude: '^fc\\.', renames: [{ pattern: '^conv', replacement: 'c' }] }],
  ['training_checkpoint.pt', { ...NO_RULES, preset: { name: 'dp' } }],
];

for (const [file, rules] of CASES) {
  test(`packed report of ${file}: expanded whole and in pieces, the same JSON as the worker's report`, async () => {
    const out = path.join(dir, file);
    const r = await convertFile(path.join('test/fixtures/torch', file), { rules, output: out, force: true, syncFolder: false });
    assert.equal(r.verified, true, r.outputs[0]?.mismatch);
    const checks = r.outputs[0]!.checks;
    assert.ok(checks.length >= 2, 'the fixture has several tensors');
    // a failed check carries its problem into the expanded form
    checks.fail(1, 'a problem, as a corrupted output would have');
    const expected = JSON.stringify(r);
    const packed = packConversionReport(r);
    const transfer = transferListOf(packed);
    assert.ok(transfer.length > 0);
    // as postMessage moves it: the buffers are transferred, nothing of them is left here
    const received = structuredClone(packed, { transfer }) as PackedConversionReport;
    assert.ok(
      transfer.every((b) => b.byteLength === 0),
      'the buffers moved',
    );
    assert.equal(JSON.stringify(unpackConversionReport(received)), expected);
    const pieces: string[] = [];
    await writeJsonInPieces(
      received,
      [
        ...received.outputs.map((o): LongList => ({ at: o.checks, length: o.checks.count, items: (from, to) => checksIn(o.checks, from, to) })),
        ...received.plan.stateDicts.map((sd): LongList => ({ at: sd.keys, length: sd.keys.count, items: keyChangePieces(sd.keys) })),
      ],
      (s) => pieces.push(s),
    );
    assert.equal(pieces.join(''), `${expected}\n`);
    // …and as UTF-8 bytes made from the columns, as `convert --json` writes plain-ASCII keys
    const bytes: Buffer[] = [];
    await writeJsonInPieces(
      received,
      [
        ...received.outputs.map((o): LongList => {
          assert.ok(checksHaveUtf8(o.checks), 'ASCII keys');
          return { at: o.checks, length: o.checks.count, items: () => assert.fail('utf8 is used'), utf8: (from, to) => checksUtf8(o.checks, from, to) };
        }),
        ...received.plan.stateDicts.map((sd): LongList => {
          assert.ok(keyChangesHaveUtf8(sd.keys), 'ASCII keys');
          return { at: sd.keys, length: sd.keys.count, items: () => assert.fail('utf8 is used'), utf8: keyChangeUtf8Pieces(sd.keys) };
        }),
      ],
      (s) => bytes.push(Buffer.from(s)),
      undefined,
      (b) => bytes.push(Buffer.from(b)),
    );
    assert.equal(Buffer.concat(bytes).toString(), `${expected}\n`);
    for (const o of received.outputs)
      for (const [from, to] of [
        [0, 1],
        [1, o.checks.count],
        [0, o.checks.count + 5],
      ] as const) {
        assert.equal(Buffer.from(checksUtf8(o.checks, from, to)).toString(), JSON.stringify(checksIn(o.checks, from, to)).slice(1, -1));
      }
    const keys = r.plan.stateDicts.flatMap((sd) => sd.keys);
    if (file === 'dp_state_dict.pt') {
      assert.ok(keys.some((k) => k.to === null) && keys.some((k) => k.to !== null && k.to !== k.from), 'keys dropped and renamed');
    }
  });
}

test('key texts of every kind come back exactly: ASCII, Latin-1, other scripts, astral characters, lone surrogates', async () => {
  const texts = [
    ['plain.weight', 'café.poids'],
    ['ключ.вес', 'emoji.😀', 'lone.\ud800.surrogate', ''],
    ['quote".weight', 'back\\slash', 'tab\t.nul\u0000', 'del\u007f.line\u2028'],
  ];
  for (const list of texts) {
    const keys = list.map((from, i) => ({ from, to: i % 2 ? `${from}.renamed` : from }));
    const packed = packConversionReport({ plan: { stateDicts: [{ keys }] }, outputs: [] } as unknown as Parameters<typeof packConversionReport>[0]);
    const transfer = transferListOf(packed);
    const received = structuredClone(packed, { transfer }) as PackedConversionReport;
    assert.ok(
      transfer.every((b) => b.byteLength === 0),
      'the texts moved with the other columns',
    );
    assert.deepEqual(keyChangePieces(received.plan.stateDicts[0]!.keys)(0, keys.length), keys);
    // only plain ASCII (nothing JSON escapes) is written as bytes straight from the columns
    assert.equal(keyChangesHaveUtf8(received.plan.stateDicts[0]!.keys), false);
    // …the others from the key changes' objects, as `convert --json` writes them
    const written: string[] = [];
    const sd = received.plan.stateDicts[0]!;
    await writeJsonInPieces({ keys: sd.keys }, [{ at: sd.keys, length: sd.keys.count, items: keyChangePieces(sd.keys) }], (t) => written.push(t));
    assert.equal(written.join(''), `${JSON.stringify({ keys })}\n`);
  }
  const ascii = [
    { from: 'plain.weight', to: 'plain.weight' },
    { from: 'del\u007f ~', to: null },
    { from: 'a', to: 'b' },
  ];
  const packed = packConversionReport({ plan: { stateDicts: [{ keys: ascii }] }, outputs: [] } as unknown as Parameters<typeof packConversionReport>[0]);
  const keys = packed.plan.stateDicts[0]!.keys;
  assert.ok(keyChangesHaveUtf8(keys));
  assert.equal(Buffer.from(keyChangeUtf8Pieces(keys)(0, 3)).toString(), JSON.stringify(ascii).slice(1, -1));
});

test('keys are written as bytes straight from the columns only when each byte is its own JSON text, wherever an other one is', () => {
  const hasUtf8 = (from: string): boolean => {
    const packed = packConversionReport({ plan: { stateDicts: [{ keys: [{ from, to: from }] }] }, outputs: [] } as unknown as Parameters<
      typeof packConversionReport
    >[0]);
    return keyChangesHaveUtf8(packed.plan.stateDicts[0]!.keys);
  };
  for (let at = 0; at < 11; at++) {
    const key = (c: string): string => `${'a'.repeat(at)}${c}${'a'.repeat(10 - at)}`;
    for (const c of ['\u0000', '\u001f', '"', '\\', '\u0080', 'é', '\u00ff', 'ж']) assert.equal(hasUtf8(key(c)), false, `${JSON.stringify(c)} at ${at}`);
    for (const c of [' ', '!', '#', '[', ']', '~', '\u007f']) assert.equal(hasUtf8(key(c)), true, `${JSON.stringify(c)} at ${at}`);
  }
});

test('checks as UTF-8 bytes: list indices, shapes of every size, a CRC not read, failed checks with and without a problem', () => {
  const dims = [[], [0], [1, 2, 3], [4294967296, 1e21, 2 ** 53], [10, 1000000]];
  const n = dims.length;
  const keyTexts = ['state_dict', 'layer.0.weight', '3', 'opt', 'x', '7', 'y', 'z', 'w'];
  const pathEnds = Uint32Array.from([2, 3, 5, 8, 9]);
  const ends = new Uint32Array(keyTexts.length);
  keyTexts.reduce((end, t, i) => (ends[i] = end + t.length), 0);
  const checks = {
    count: n,
    keys: { bytes: Buffer.from(keyTexts.join(''), 'latin1'), encoding: 'latin1' as const, ends },
    numberKeys: Uint8Array.from([0, 0, 1, 0, 0, 1, 0, 0, 0]),
    pathEnds,
    dtypes: ['torch.float32', 'torch.int64'],
    dtypeIds: Uint8Array.from([0, 1, 0, 1, 0]),
    dims: Float64Array.from(dims.flat()),
    shapeEnds: Uint32Array.from(dims.map((_, i) => dims.slice(0, i + 1).flat().length)),
    devices: ['cpu', 'cuda:0'],
    deviceIds: Uint16Array.from([0, 1, 1, 0, 0]),
    crcs: Uint32Array.from([0, 0xdeadbeef, 0x0000000f, 0xffffffff, 12345]),
    flags: Uint8Array.from([1, 1, 0, 3, 2]),
    problems: new Map([[3, 'CRC-32 "differs" ↯']]),
  };
  assert.ok(checksHaveUtf8(checks));
  for (const [from, to] of [
    [0, n],
    [1, 3],
    [2, n + 4],
  ] as const)
    assert.equal(Buffer.from(checksUtf8(checks, from, to)).toString(), JSON.stringify(checksIn(checks, from, to)).slice(1, -1));
});

test('key changes a piece at a time, pieces out of order too', () => {
  const keys = Array.from({ length: 10 }, (_, i) => ({ from: `k${i}`, to: i % 3 === 0 ? null : i % 3 === 1 ? `k${i}` : `renamed.k${i}` }));
  const r = packConversionReport({
    plan: { stateDicts: [{ keys }] },
    outputs: [],
  } as unknown as Parameters<typeof packConversionReport>[0]);
  const pieces = keyChangePieces(r.plan.stateDicts[0]!.keys);
  assert.deepEqual([...pieces(0, 4), ...pieces(4, 8), ...pieces(8, 12)], keys);
  assert.deepEqual(pieces(5, 7), keys.slice(5, 7));
  assert.deepEqual(pieces(2, 6), keys.slice(2, 6));
  const text = (ks: unknown[]): string => JSON.stringify(ks).slice(1, -1);
  const utf8 = keyChangeUtf8Pieces(r.plan.stateDicts[0]!.keys);
  const utf8Text = (from: number, to: number): string => Buffer.from(utf8(from, to)).toString();
  assert.deepEqual([utf8Text(0, 4), utf8Text(4, 8), utf8Text(8, 12)], [text(keys.slice(0, 4)), text(keys.slice(4, 8)), text(keys.slice(8))]);
  assert.equal(utf8Text(5, 7), text(keys.slice(5, 7)));
  assert.equal(utf8Text(2, 6), text(keys.slice(2, 6)));
});
