/**
 * What a file about to be replaced holds now, so "Overwrite" names it: the layout, roles and
 * tensor count when it is a checkpoint, else why it is not one; its size and modification time.
 */
import * as fs from 'node:fs';
import type { ExistingOutput } from '../../shared/convert.ts';
import { LAYOUT_TITLES } from '../../shared/layout-names.ts';
import { openCheckpoint } from '../inputs/open-checkpoint.ts';
import { asCheckpointError } from '../errors.ts';

const ROLE_NAMES: Record<string, string> = {
  'state-dict': 'state dict',
  optimizer: 'optimizer state',
  lightning: 'Lightning checkpoint',
  module: 'whole pickled model',
  shard: 'shard',
};

export function describeExisting(file: string): ExistingOutput | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return null;
  }
  const base = { bytes: st.size, modified: st.mtime.toISOString() };
  if (st.isDirectory()) return { ...base, what: 'a folder' };
  try {
    const ck = openCheckpoint(file);
    try {
      const r = ck.report;
      const roles = [...new Set(r.roles.map((role) => ROLE_NAMES[role.kind] ?? role.kind))];
      const devices = Object.keys(r.layout.devices).sort();
      const what =
        `${r.tensors.length ? `a ${LAYOUT_TITLES[r.layout.kind]} ` : 'a '}${roles.length ? roles.join(' + ') : `${r.format} file`}: ` +
        `${r.totals.tensors} ${r.totals.tensors === 1 ? 'tensor' : 'tensors'}${devices.length ? ` on ${devices.join(', ')}` : ''}`;
      return { ...base, what };
    } finally {
      ck.close();
    }
  } catch (e) {
    const why = asCheckpointError(e).message;
    return { ...base, what: `not a checkpoint ckpt reads (${why.startsWith(`${file}: `) ? why.slice(file.length + 2) : why})` };
  }
}
