// `node build/apply-moves.mjs [files…]`: after merging `restructure-moves`, points relative imports
// (and `new URL('…', import.meta.url)` paths) that name a moved file at its new place, using the
// table in MOVES.md. Only specifiers whose target no longer exists are changed. Without arguments
// it looks at every tracked and untracked source file under main/, shared/, test/, renderer/, build/.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { posix as path } from 'node:path';

const moves = new Map();
for (const m of readFileSync('MOVES.md', 'utf8').matchAll(/^\| `([^`]+)` \| `([^`]+)` \|$/gm)) moves.set(m[1], m[2]);
const files =
  process.argv.length > 2
    ? process.argv.slice(2)
    : execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' })
        .split('\n')
        .filter((f) => /^(main|shared|test|renderer|build)\/.*\.(ts|svelte|mjs)$/.test(f) && existsSync(f));

function mapSpec(file, spec) {
  const target = path.normalize(path.join(path.dirname(file), spec));
  const moved = moves.get(target);
  if (!moved || existsSync(target)) return spec;
  const r = path.relative(path.dirname(file), moved);
  return r.startsWith('.') ? r : `./${r}`;
}
let changed = 0;
for (const file of files) {
  const src = readFileSync(file, 'utf8');
  const out = src
    .replace(/(\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])(\.\.?\/[^'"]*)\2/g, (_, pre, q, spec) => pre + q + mapSpec(file, spec) + q)
    .replace(/(new URL\(\s*)(['"])(\.\.?\/[^'"]*)\2(?=\s*,\s*import\.meta\.url)/g, (_, pre, q, spec) => pre + q + mapSpec(file, spec) + q);
  if (out !== src) {
    writeFileSync(file, out);
    changed++;
    console.log(`rewrote ${file}`);
  }
}
console.log(`${changed} file(s) changed`);
