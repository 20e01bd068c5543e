import { setFlagsFromString } from 'node:v8';

/**
 * V8 decides per allocation site whether to place new objects straight in the old generation
 * ("pretenuring") once most of a site's objects survive. Reading a state dict, the (key, value)
 * pair a dict keeps per entry is such a site, and whether and when V8 switches made the peak of a
 * 100,000-tensor `inspect --json` bimodal: 227–325 MB over 4 runs with the default (2 above the
 * 300 MB target), 221–224 MB in 4 of 4 without pretenuring, at the same time (2.28–2.91 vs
 * 2.37–3.02 s of CPU; 500,000-tensor inspect and 100,000-tensor convert unchanged), 14:49 on the
 * 2-core machine. V8 flags are per process, so this is set before any reading and any worker
 * starts. Only on the V8 this was measured with (11.x, Node 20).
 */
export function tuneV8ForCli(): void {
  if (!process.versions.v8.startsWith('11.')) return;
  setFlagsFromString('--no-allocation-site-pretenuring');
}
