import type * as fs from 'node:fs';

/**
 * What a path is when it is neither a regular file nor a folder, for the message that refuses
 * it: reading a FIFO or a character device blocks for ever or never ends, so checkpoints are
 * only ever read from regular files.
 */
export function specialFileKind(st: fs.Stats): string | null {
  if (st.isFile() || st.isDirectory()) return null;
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

export function notRegularFileMessage(file: string, kind: string): string {
  return `${file}: is ${kind}, not a regular file; a checkpoint is read only from a regular file (copy it to one first)`;
}
