// Finding a dropped file by what a browser tells a page about it (name, size, modified time)
// under the recent folders: real files in a temporary tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findDroppedFile } from '../../../main/inputs/find-file.ts';

const CPU = fileURLToPath(new URL('../../../build/sample-workspace/digits-cnn/cpu.pt', import.meta.url));

test('finds the one file with the name, size and modified time, a few levels down; skips look-alikes and hidden folders', () => {
  const root = mkdtempSync(join(tmpdir(), 'ckpt-find-'));
  const want = join(root, 'runs', 'a', 'model.pt');
  mkdirSync(join(root, 'runs', 'a'), { recursive: true });
  copyFileSync(CPU, want);
  const when = new Date('2026-01-02T03:04:05Z');
  utimesSync(want, when, when);
  // same name, other size; same name and size, other time; a copy in a hidden folder; one too deep
  mkdirSync(join(root, 'runs', 'b'), { recursive: true });
  writeFileSync(join(root, 'runs', 'b', 'model.pt'), 'x');
  mkdirSync(join(root, 'runs', 'c'), { recursive: true });
  copyFileSync(CPU, join(root, 'runs', 'c', 'model.pt'));
  mkdirSync(join(root, '.cache'), { recursive: true });
  copyFileSync(want, join(root, '.cache', 'model.pt'));
  utimesSync(join(root, '.cache', 'model.pt'), when, when);
  mkdirSync(join(root, 'd1', 'd2', 'd3', 'd4'), { recursive: true });
  copyFileSync(want, join(root, 'd1', 'd2', 'd3', 'd4', 'model.pt'));
  utimesSync(join(root, 'd1', 'd2', 'd3', 'd4', 'model.pt'), when, when);

  const size = statSync(want).size;
  // the browser's File.lastModified is whole milliseconds; the search allows file systems' rounding
  const r = findDroppedFile({ name: 'model.pt', bytes: size, modifiedMs: when.getTime() + 400 }, [root, join(root, 'runs')]);
  assert.deepEqual(r.matches, [want]);
  assert.equal(r.stoppedEarly, false);
  assert.deepEqual(findDroppedFile({ name: 'model.pt', bytes: size + 1, modifiedMs: when.getTime() }, [root]).matches, []);
  assert.deepEqual(findDroppedFile({ name: 'other.pt', bytes: size, modifiedMs: when.getTime() }, [root, join(root, 'gone')]).matches, []);
});
