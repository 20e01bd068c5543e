// Runs the built CLI in this process and, on exit, writes its resource use to the file named by
// CKPT_PEAK_RSS_FILE as JSON: peak resident set (getrusage ru_maxrss, KiB) and CPU time (user +
// system, ms), worker threads included.
// Usage: node test/fuzz/peak-rss.mjs dist/ckpt.js <ckpt args…>
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , cli, ...args] = process.argv;
const out = process.env['CKPT_PEAK_RSS_FILE'];
process.on('exit', () => {
  const u = process.resourceUsage();
  if (out) writeFileSync(out, JSON.stringify({ maxRssKiB: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 }));
});
process.argv = [process.argv[0], resolve(cli), ...args];
await import(pathToFileURL(resolve(cli)).href);
