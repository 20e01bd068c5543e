// Runs the built CLI in this process and, on exit, writes the process's peak resident set
// (getrusage ru_maxrss, in KiB, worker threads included) to the file named by CKPT_PEAK_RSS_FILE.
// Usage: node test/fuzz/peak-rss.mjs dist/ckpt.js <ckpt args…>
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , cli, ...args] = process.argv;
const out = process.env['CKPT_PEAK_RSS_FILE'];
process.on('exit', () => {
  if (out) writeFileSync(out, String(process.resourceUsage().maxRSS));
});
process.argv = [process.argv[0], resolve(cli), ...args];
await import(pathToFileURL(resolve(cli)).href);
