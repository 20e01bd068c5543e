/** Calls `fn` once input has been quiet for `ms`; `cancel()` drops a pending call. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): ((...args: A) => void) & { cancel(): void } {
  let t: ReturnType<typeof setTimeout> | null = null;
  const run = (...args: A): void => {
    if (t) clearTimeout(t);
    t = setTimeout(() => {
      t = null;
      fn(...args);
    }, ms);
  };
  run.cancel = (): void => {
    if (t) clearTimeout(t);
    t = null;
  };
  return run;
}
