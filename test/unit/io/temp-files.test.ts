// Temporary-file names and staleness: a name says which host, process and time made it; whether
// it may be removed depends only on how long it has been untouched, never on a PID.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  findTempFiles,
  HEARTBEAT_MS,
  isStale,
  keepAlive,
  parseDuration,
  parseTempName,
  PUBLISH_MARK,
  removeStaleTempFiles,
  replacedPathFor,
  STALE_AFTER_MS,
  TEMP_MARK,
  tempPathFor,
} from '../../../main/io/temp-files.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-temps-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const age = (p: string, ms: number): void => {
  const t = new Date(Date.now() - ms);
  fs.utimesSync(p, t, t);
};

test('a temp path is hidden, beside its destination, and names host, pid, start time and a random part', () => {
  const dest = path.join(dir, 'model.pt');
  const a = tempPathFor(dest);
  const b = tempPathFor(dest);
  assert.notEqual(a, b);
  assert.equal(path.dirname(a), dir);
  const p = parseTempName(path.basename(a))!;
  assert.equal(p.output, 'model.pt');
  assert.equal(p.pid, process.pid);
  assert.equal(
    p.host,
    os
      .hostname()
      .replace(/[^A-Za-z0-9_.]/g, '_')
      .slice(0, 40),
  );
  assert.ok(Math.abs(p.startedMs! - Date.now()) < 5000);
  // the names earlier versions wrote are still recognised (age decides for them too)
  assert.deepEqual(parseTempName('.x.pt.ckpt-tmp-123-0badf00d'), { output: 'x.pt', host: null, pid: 123, startedMs: null, replaced: false });
  for (const n of ['x.pt', '.x.pt', 'x.pt.ckpt-tmp-vm-1-a-0badf00d', '.x.ckpt-tmp-zzz']) assert.equal(parseTempName(n), null, n);
});

test('staleness is age only: a fresh file of a dead pid stays, an old file of a live pid goes', () => {
  const sub = fs.mkdtempSync(path.join(dir, 'stale-'));
  const deadPid = spawnSync('true').pid!;
  const fresh = path.join(sub, `.a.pt.ckpt-tmp-othernode-${deadPid}-${Date.now().toString(36)}-00000001`);
  const old = path.join(sub, `.b.pt.ckpt-tmp-vm-${process.pid}-${(Date.now() - 2 * STALE_AFTER_MS).toString(36)}-00000002`);
  const oldName = path.join(sub, `.c.pt.ckpt-tmp-${deadPid}-00000003`);
  const staging = path.join(sub, `.d.ckpt-tmp-vm-1-${(Date.now() - 2 * STALE_AFTER_MS).toString(36)}-00000004`);
  for (const f of [fresh, old, oldName]) fs.writeFileSync(f, 'x');
  fs.mkdirSync(staging);
  fs.writeFileSync(path.join(staging, 'rank0.pt'), 'being written'); // a staging folder is live while its files change
  age(old, 2 * STALE_AFTER_MS);
  age(oldName, STALE_AFTER_MS + 1000);
  age(staging, 2 * STALE_AFTER_MS);
  fs.writeFileSync(path.join(sub, 'model.pt'), 'an output, never touched');
  const found = findTempFiles(dir).filter((e) => e.path.startsWith(sub));
  assert.deepEqual(found.map((e) => path.basename(e.path)).sort(), [fresh, old, oldName, staging].map((f) => path.basename(f)).sort());
  assert.deepEqual(
    found
      .filter((e) => isStale(e))
      .map((e) => e.path)
      .sort(),
    [old, oldName].sort(),
  );
  const removed = removeStaleTempFiles(sub)
    .map((e) => e.path)
    .sort();
  assert.deepEqual(removed, [old, oldName].sort());
  assert.ok(fs.existsSync(fresh) && fs.existsSync(staging) && fs.existsSync(path.join(sub, 'model.pt')));
});

test("a replaced output's second link is named like a temp file, is stale from the start, and a run frees it in the background", async () => {
  const sub = fs.mkdtempSync(path.join(dir, 'replaced-'));
  const second = replacedPathFor(path.join(sub, 'model.pt'));
  assert.match(path.basename(second), /^\.model\.pt\.ckpt-replaced-[A-Za-z0-9_.]+-\d+-[0-9a-z]+-[0-9a-f]{8}$/);
  const p = parseTempName(path.basename(second))!;
  assert.deepEqual([p.output, p.pid, p.replaced], ['model.pt', process.pid, true]);
  // an output whose own name contains the mark is still a temp file's output, not a replaced one
  assert.equal(parseTempName('.a.ckpt-replaced-b.ckpt-tmp-vm-1-a-0badf00d')?.replaced, false);
  assert.equal(parseTempName('.a.ckpt-replaced-b.ckpt-tmp-vm-1-a-0badf00d')?.output, 'a.ckpt-replaced-b');
  assert.equal(parseTempName('.x.pt.ckpt-replaced-123-0badf00d'), null, 'no old-style replaced names');
  fs.writeFileSync(second, 'the old output, just replaced'); // fresh: written this instant
  const fresh = path.join(sub, `.model.pt${TEMP_MARK}vm-1-${Date.now().toString(36)}-00000001`);
  fs.writeFileSync(fresh, 'being written');
  const folder = replacedPathFor(path.join(sub, 'dcp')); // never made by ckpt: age decides, as for any folder
  fs.mkdirSync(folder);
  const found = findTempFiles(sub);
  assert.deepEqual(
    found.filter((e) => isStale(e)).map((e) => e.path),
    [second],
    'stale however young: nobody is writing it',
  );
  assert.deepEqual(
    removeStaleTempFiles(sub).map((e) => e.path),
    [second],
  );
  const until = Date.now() + 10_000;
  while (fs.existsSync(second) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!fs.existsSync(second), 'removed by the background rm');
  assert.ok(fs.existsSync(fresh), 'the live temp file stays');
  assert.ok(fs.existsSync(folder), 'a young folder stays, whatever its name');
});

test("a staging folder that a publish journal names is no leftover, however old: only the journal's recovery removes it", () => {
  const sub = fs.mkdtempSync(path.join(dir, 'journaled-'));
  const old = (Date.now() - 2 * STALE_AFTER_MS).toString(36);
  const staging = path.join(sub, `.out.rank0.pt${TEMP_MARK}vm-1-${old}-0000000a`);
  const orphan = path.join(sub, `.other.pt${TEMP_MARK}vm-1-${old}-0000000b`);
  for (const f of [staging, orphan]) {
    fs.mkdirSync(f);
    fs.writeFileSync(path.join(f, 'out.rank0.pt.replaced'), 'an original, parked by a killed publish');
    age(path.join(f, 'out.rank0.pt.replaced'), 2 * STALE_AFTER_MS);
    age(f, 2 * STALE_AFTER_MS);
  }
  fs.writeFileSync(path.join(sub, `.out.rank0.pt${PUBLISH_MARK}vm-1-${old}-0000000a.json`), '{}');
  assert.deepEqual(
    findTempFiles(sub).map((e) => e.path),
    [orphan],
  );
  assert.deepEqual(
    removeStaleTempFiles(sub).map((e) => e.path),
    [orphan],
  );
  assert.ok(fs.existsSync(path.join(staging, 'out.rank0.pt.replaced')), 'the parked original stays');
});

test('--older-than durations', () => {
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('30m'), 1_800_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('soon'), null);
});

test('keepAlive touches a temporary file (by descriptor) or a staging folder (by path) every HEARTBEAT_MS, until stopped', async (t) => {
  const file = path.join(dir, `.held.pt${TEMP_MARK}x`);
  fs.writeFileSync(file, 'x');
  const folder = path.join(dir, `.held-folder${TEMP_MARK}x`);
  fs.mkdirSync(folder);
  const fd = fs.openSync(file, 'r+');
  t.after(() => fs.closeSync(fd));
  t.mock.timers.enable({ apis: ['setInterval'] });
  const stops = [keepAlive(fd), keepAlive(folder)];
  const touched = async (): Promise<boolean[]> => {
    await new Promise((r) => setTimeout(r, 50)); // the touches are asynchronous
    return [file, folder].map((p) => fs.statSync(p).mtimeMs > Date.now() - 60_000);
  };
  for (const p of [file, folder]) age(p, STALE_AFTER_MS - 1000);
  t.mock.timers.tick(HEARTBEAT_MS - 1);
  assert.deepEqual(await touched(), [false, false], 'not before HEARTBEAT_MS');
  t.mock.timers.tick(1);
  assert.deepEqual(await touched(), [true, true]);
  for (const stop of stops) stop();
  for (const p of [file, folder]) age(p, STALE_AFTER_MS - 1000);
  t.mock.timers.tick(HEARTBEAT_MS * 2);
  assert.deepEqual(await touched(), [false, false], 'stopped: no more touches');
});
