import type { SizeMismatch } from '../../shared/fit.ts';

/** What a pasted `load_state_dict` error says, in its own terms. */
export interface LoadErrorText {
  className: string | null;
  missing: string[];
  unexpected: string[];
  mismatched: SizeMismatch[];
}

const HEADER = /Error\(s\) in loading state_dict for ([\w.]+):/;
const KEY_LIST = /"((?:[^"\\]|\\.)*)"/g;
// torch/nn/modules/module.py `_load_from_state_dict`: 'size mismatch for {}: copying a param with
// shape {} from checkpoint, the shape in current model is {}.' (the same words in 1.13 and 2.x)
const MISMATCH =
  /size mismatch for (\S+): copying a param with shape torch\.Size\(\[([\d,\s]*)\]\) from checkpoint, the shape in current model is torch\.Size\(\[([\d,\s]*)\]\)/g;

/** True when the text holds torch's load_state_dict error (or a paste of its lines). */
export function looksLikeLoadError(text: string): boolean {
  return HEADER.test(text) || /(Missing|Unexpected) key\(s\) in state_dict: "/.test(text) || /size mismatch for \S+: copying a param/.test(text);
}

/**
 * Parses torch's own message, as `load_state_dict` builds it (torch/nn/modules/module.py
 * `load_state_dict`): 'Missing key(s) in state_dict: "a", "b". ' and 'Unexpected key(s) in
 * state_dict: ...' lines, each key in double quotes, then the size-mismatch lines. A paste may
 * carry a traceback around it or lose the tabs; only these lines are read.
 */
export function parseLoadError(text: string): LoadErrorText {
  const className = HEADER.exec(text)?.[1] ?? null;
  const keysAfter = (label: string): string[] => {
    const out: string[] = [];
    const re = new RegExp(`${label} key\\(s\\) in state_dict: (.*)`, 'g');
    for (const m of text.matchAll(re)) {
      // the list ends at the first line break: keys never hold one
      for (const k of m[1]!.matchAll(KEY_LIST)) out.push(k[1]!.replace(/\\(.)/g, '$1'));
    }
    return out;
  };
  const dims = (s: string): number[] =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x)
      .map(Number);
  const mismatched = [...text.matchAll(MISMATCH)].map((m) => ({ key: m[1]!, checkpointShape: dims(m[2]!), modelShape: dims(m[3]!) }));
  return { className, missing: keysAfter('Missing'), unexpected: keysAfter('Unexpected'), mismatched };
}
