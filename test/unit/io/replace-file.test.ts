// Replacing an output with --force (issue 15): the old output gets a second, hidden link before the
// rename, so the rename does not wait for its blocks to be freed; the caller frees it in the
// background. Where hard links are refused, or the old output is small, a plain rename does it, as
// before. The CLI side (kills between the steps, `ckpt clean`, the next run) is force-replace.test.ts.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BACKGROUND_FREE_FROM_BYTES, replaceFile } from '../../../main/io/replace-file.ts';
import { freeInBackground, parseTempName, REPLACED_MARK } from '../../../main/io/temp-files.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-replace-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A folder holding `out.pt` (the old output) and a temporary file with the new one. */
function setUp(): { dir: string; dest: string; tmp: string; oldIno: number } {
  const dir = fs.mkdtempSync(path.join(root, 'case-'));
  const dest = path.join(dir, 'out.pt');
  const tmp = path.join(dir, '.out.pt.ckpt-tmp-vm-1-a-0badf00d');
  fs.writeFileSync(dest, 'old output');
  fs.writeFileSync(tmp, 'new output');
  return { dir, dest, tmp, oldIno: fs.statSync(dest).ino };
}

const secondLinks = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.includes(REPLACED_MARK));

async function gone(p: string, withinMs = 10_000): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (fs.existsSync(p) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return !fs.existsSync(p);
}

const refusing =
  (code: string) =>
  (existing: string, newPath: string): void => {
    throw Object.assign(new Error(`${code}: operation not permitted, link '${existing}' -> '${newPath}'`), { code, syscall: 'link' });
  };

test('a big old output keeps a hidden second link through the rename; freeInBackground removes it', async () => {
  const { dir, dest, tmp, oldIno } = setUp();
  const second = replaceFile(tmp, dest, { backgroundFreeFrom: 0 });
  assert.ok(second, 'a second link was made');
  assert.equal(path.dirname(second), dir);
  const parsed = parseTempName(path.basename(second))!;
  assert.equal(parsed.output, 'out.pt');
  assert.equal(parsed.replaced, true);
  assert.equal(parsed.pid, process.pid);
  assert.equal(fs.readFileSync(dest, 'utf8'), 'new output');
  assert.ok(!fs.existsSync(tmp));
  const kept = fs.statSync(second);
  assert.equal(kept.ino, oldIno, 'the old output itself, not a copy');
  assert.equal(kept.nlink, 1, 'its only link now');
  assert.equal(fs.readFileSync(second, 'utf8'), 'old output');
  freeInBackground([second]);
  assert.ok(await gone(second), 'removed in the background');
  assert.deepEqual(fs.readdirSync(dir), ['out.pt']);
});

test('a file system that refuses hard links (EPERM, ENOTSUP): a plain rename replaces the output, nothing is left beside it', () => {
  for (const code of ['EPERM', 'ENOTSUP', 'EOPNOTSUPP']) {
    const { dir, dest, tmp } = setUp();
    let tried = 0;
    const link = (a: string, b: string): void => {
      tried++;
      refusing(code)(a, b);
    };
    assert.equal(replaceFile(tmp, dest, { backgroundFreeFrom: 0, link }), null, code);
    assert.equal(tried, 1, `${code}: the link was tried`);
    assert.equal(fs.readFileSync(dest, 'utf8'), 'new output', code);
    assert.deepEqual(fs.readdirSync(dir), ['out.pt'], code);
  }
});

test('no second link where the rename frees nothing worth waiting for: a small output, no output, an output with other links', () => {
  const never = (): void => assert.fail('no link expected');
  const small = setUp();
  assert.equal(replaceFile(small.tmp, small.dest, { link: never }), null, `under ${BACKGROUND_FREE_FROM_BYTES} bytes`);
  assert.equal(fs.readFileSync(small.dest, 'utf8'), 'new output');

  const none = setUp();
  fs.unlinkSync(none.dest);
  assert.equal(replaceFile(none.tmp, none.dest, { backgroundFreeFrom: 0, link: never }), null);
  assert.equal(fs.readFileSync(none.dest, 'utf8'), 'new output');

  const linked = setUp();
  fs.linkSync(linked.dest, path.join(linked.dir, 'also-old.pt'));
  assert.equal(replaceFile(linked.tmp, linked.dest, { backgroundFreeFrom: 0, link: never }), null);
  assert.equal(fs.readFileSync(path.join(linked.dir, 'also-old.pt'), 'utf8'), 'old output');
  assert.deepEqual(secondLinks(linked.dir), []);
});

test('a rename that fails leaves the old output in place and no second link', () => {
  const { dir, dest, tmp, oldIno } = setUp();
  fs.unlinkSync(tmp); // the rename now fails with ENOENT
  assert.throws(() => replaceFile(tmp, dest, { backgroundFreeFrom: 0 }), { code: 'ENOENT' });
  assert.equal(fs.statSync(dest).ino, oldIno);
  assert.equal(fs.statSync(dest).nlink, 1);
  assert.equal(fs.readFileSync(dest, 'utf8'), 'old output');
  assert.deepEqual(secondLinks(dir), []);
});

test('where `rm` cannot start, the old output is unlinked in the I/O thread pool instead', async () => {
  const { dir, dest, tmp } = setUp();
  const second = replaceFile(tmp, dest, { backgroundFreeFrom: 0 })!;
  const path0 = process.env['PATH'];
  process.env['PATH'] = path.join(dir, 'no-such-bin');
  try {
    freeInBackground([second]);
  } finally {
    process.env['PATH'] = path0;
  }
  assert.ok(await gone(second));
  assert.equal(fs.readFileSync(dest, 'utf8'), 'new output');
});
