// Device tags (`cpu`, `cuda:3`, `mps`, `meta`) as colours: one hue per CUDA ordinal, neutral for
// the CPU. The colours are CSS custom properties (app.css) so both themes can tune them.

export function deviceIndex(tag: string): number | null {
  const m = /^[a-z]+:(\d+)$/.exec(tag);
  return m ? Number(m[1]) : null;
}

export function deviceColor(tag: string): string {
  if (tag === 'cpu') return 'var(--dev-cpu)';
  if (tag === 'meta') return 'var(--dev-meta)';
  if (tag === 'mps') return 'var(--dev-mps)';
  if (tag.startsWith('cuda')) return `var(--dev-${(deviceIndex(tag) ?? 0) % 8})`;
  return 'var(--dev-other)';
}

/** Device tags in a stable, readable order: cpu first, then cuda by index, then the rest. */
export function sortDevices(tags: readonly string[]): string[] {
  const rank = (t: string): [number, number, string] => [t === 'cpu' ? 0 : t.startsWith('cuda') ? 1 : 2, deviceIndex(t) ?? -1, t];
  return [...tags].sort((a, b) => {
    const x = rank(a);
    const y = rank(b);
    return x[0] - y[0] || x[1] - y[1] || x[2].localeCompare(y[2]);
  });
}
