/**
 * The values the scanning VM keeps on its stack: only what a verdict needs (which global a value
 * came from, what type torch's weights-only unpickler would see, small literals for rendering a
 * call), never the data itself.
 */
export type Sym =
  | { t: 'global'; module: string; name: string; full: string }
  /** the result of a call: `type` is what `type(x)` would be for the weights-only checks */
  | ({ t: 'obj'; type: string; origin: string; offset: number } & Expandable)
  | { t: 'str'; v: string }
  | { t: 'int'; v: number | bigint }
  | { t: 'float' }
  | { t: 'bool'; v: boolean }
  | { t: 'none' }
  | { t: 'bytes'; n: number }
  | ({ t: 'tuple'; items: Sym[] } & Expandable)
  | ({ t: 'list' } & Expandable)
  | ({ t: 'dict'; type: 'dict' | 'OrderedDict' | 'Counter' } & Expandable)
  | ({ t: 'set'; frozen: boolean } & Expandable)
  | { t: 'persistent' };

/**
 * A container's expanded size (every element counted once per path to it), kept on the value by
 * `StructureCheck.holds`; absent: 1. On the value itself, not in a WeakMap beside it: 400,000
 * containers of a 100,000-tensor pickle made the WeakMap the scan's largest cost.
 */
export interface Expandable {
  expanded?: number;
}

export const NONE: Sym = { t: 'none' };

/** Python-like text of a value, bounded in depth and length (for showing what a call would do). */
export function symText(s: Sym, depth = 0): string {
  switch (s.t) {
    case 'global':
      return s.full;
    case 'obj':
      return `${s.origin}(…)`;
    case 'str':
      return JSON.stringify(s.v.length > 80 ? `${s.v.slice(0, 80)}…` : s.v);
    case 'int':
      return String(s.v);
    case 'float':
      return '<float>';
    case 'bool':
      return s.v ? 'True' : 'False';
    case 'none':
      return 'None';
    case 'bytes':
      return `<${s.n} bytes>`;
    case 'tuple': {
      if (depth > 2) return '(…)';
      const inner = s.items
        .slice(0, 6)
        .map((x) => symText(x, depth + 1))
        .join(', ');
      return `(${inner}${s.items.length > 6 ? ', …' : s.items.length === 1 ? ',' : ''})`;
    }
    case 'list':
      return '[…]';
    case 'dict':
      return s.type === 'dict' ? '{…}' : `${s.type}(…)`;
    case 'set':
      return s.frozen ? 'frozenset(…)' : '{…}';
    case 'persistent':
      return '<persistent id>';
  }
}

/** `f(a, b)` as text, at most 200 characters. */
export function callText(callee: string, args: Sym[]): string {
  const text = `${callee}(${args.map((a) => symText(a)).join(', ')})`;
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}
