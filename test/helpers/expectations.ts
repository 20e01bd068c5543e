import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every `*.expected.json` under a fixture folder, sorted: what the generators recorded torch saw. */
export function expectationFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      if (n.isDirectory()) walk(join(d, n.name));
      else if (n.name.endsWith('.expected.json')) out.push(join(d, n.name));
    }
  };
  walk(dir);
  return out.sort();
}
