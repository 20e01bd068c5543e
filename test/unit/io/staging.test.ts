// Staging folders and publish journals left by other processes: a folder or journal whose writer
// may be alive on another node or in another PID namespace is never removed or "recovered" because
// a PID looks dead here. Only age (or, for this host and namespace, a PID that is really gone) decides.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Staging } from '../../../main/io/staging.ts';
import { recoverInterruptedPublishes, writeJournal } from '../../../main/io/publish-journal.ts';
import { parseTempName, pidNamespace, STALE_AFTER_MS, THIS_HOST } from '../../../main/io/temp-files.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-staging-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const age = (p: string, ms: number): void => {
  const t = new Date(Date.now() - ms);
  fs.utimesSync(p, t, t);
};
/** a PID that belonged to a process that has exited */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

test('a staging folder is named like every temporary file: host, pid, start time, random part', () => {
  const dir = fs.mkdtempSync(path.join(root, 'name-'));
  const s = Staging.create(path.join(dir, 'out.dcp'));
  const p = parseTempName(path.basename(s.dir))!;
  assert.deepEqual([p.output, p.host, p.pid], ['out.dcp', THIS_HOST, process.pid]);
  s.discard();
  assert.deepEqual(fs.readdirSync(dir), []);
});

test("another node's fresh staging folder survives a new run even though its PID is not alive here; a stale one goes", () => {
  const dir = fs.mkdtempSync(path.join(root, 'leftovers-'));
  const fresh = path.join(dir, `.out.dcp.ckpt-tmp-othernode-${deadPid()}-${Date.now().toString(36)}-00000001`);
  const stale = path.join(dir, `.out.dcp.ckpt-tmp-othernode-${deadPid()}-${(Date.now() - 2 * STALE_AFTER_MS).toString(36)}-00000002`);
  const sameHostDead = path.join(dir, `.out.dcp.ckpt-tmp-${THIS_HOST}-${deadPid()}-${Date.now().toString(36)}-00000003`);
  for (const d of [fresh, stale, sameHostDead]) {
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, '__0_0.distcp'), 'x');
  }
  for (const p of [path.join(stale, '__0_0.distcp'), stale]) age(p, 2 * STALE_AFTER_MS);
  const s = Staging.create(path.join(dir, 'out.dcp'));
  const left = fs.readdirSync(dir).sort();
  s.discard();
  // a dead PID on this host could still be a live writer in another PID namespace: age decides
  assert.deepEqual(left, [path.basename(fresh), path.basename(sameHostDead), path.basename(s.dir)].sort());
});

test('a fresh publish journal from another host is left alone; a stale one, or one of a dead process here, is recovered', () => {
  for (const [writer, aged, expect] of [
    [{ host: 'othernode', pidNamespace: pidNamespace() }, false, []],
    [{ host: 'othernode', pidNamespace: pidNamespace() }, true, ['rolled-back']],
    [{ host: THIS_HOST, pidNamespace: 'pid:[1]' }, false, []],
    [{ host: THIS_HOST, pidNamespace: pidNamespace() }, false, ['rolled-back']],
  ] as const) {
    const dir = fs.mkdtempSync(path.join(root, 'journal-'));
    const staging = path.join(dir, `.out.dcp.ckpt-tmp-${writer.host}-${deadPid()}-${Date.now().toString(36)}-0000000a`);
    fs.mkdirSync(staging);
    const journal = path.join(dir, `${path.basename(staging).replace('.ckpt-tmp-', '.ckpt-publish-')}.json`);
    writeJournal(journal, { version: 1, pid: deadPid(), ...writer, staging, state: 'swapping', folder: { dest: path.join(dir, 'out.dcp'), old: null } });
    if (aged) age(journal, 2 * STALE_AFTER_MS);
    const done = recoverInterruptedPublishes(dir).map((r) => r.action);
    assert.deepEqual(done, [...expect], JSON.stringify({ writer, aged }));
    assert.equal(fs.existsSync(staging), expect.length === 0, 'a live publish keeps its staging folder');
  }
});
