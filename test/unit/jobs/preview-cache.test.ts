// The Convert view's preview: the source stays open while it is unchanged, and what an existing
// output holds is read once per version of that output, not again on every change of the rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PreviewCache } from '../../../main/jobs/preview-cache.ts';
import { CPU_RULES, DP, SAMPLE, tempDir } from '../service/helpers.ts';

test('an existing output is described once per version: a rules change reuses it, a replaced file is read again', () => {
  const dir = tempDir('preview-cache');
  const out = path.join(dir, 'out.pt');
  fs.copyFileSync(DP, out);
  const when = new Date('2026-01-02T03:04:05Z'); // whole seconds: set again exactly below
  fs.utimesSync(out, when, when);
  const cache = new PreviewCache();
  try {
    const first = cache.preview(DP, CPU_RULES, out);
    assert.equal(first.outputs[0]!.holds!.what, 'a DataParallel state dict: 16 tensors on cuda:0');
    // overwritten in place with other bytes of the same size and time: same inode, size and mtime,
    // so the description kept is the one shown (the file is not opened again for a rules change)
    const st = fs.statSync(out);
    fs.writeFileSync(out, Buffer.alloc(st.size, 0x23));
    fs.utimesSync(out, when, when);
    const again = cache.preview(DP, { ...CPU_RULES, stripPrefixes: ['module.'] }, out);
    assert.equal(again.outputs[0]!.holds!.what, 'a DataParallel state dict: 16 tensors on cuda:0');
    // replaced (another file, as every writer publishes by rename): described anew
    const next = path.join(dir, 'next.pt');
    fs.copyFileSync(path.join(SAMPLE, 'digits-cnn', 'checkpoint.pth.tar'), next);
    fs.renameSync(next, out);
    const replaced = cache.preview(DP, CPU_RULES, out);
    assert.equal(replaced.outputs[0]!.holds!.what, 'a DataParallel state dict + optimizer state: 46 tensors on cuda:0');
    fs.rmSync(out);
    assert.equal(cache.preview(DP, CPU_RULES, out).outputs[0]!.holds, undefined);
  } finally {
    cache.clear();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
