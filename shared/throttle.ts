/** Progress reports go out at most this often (about 10 a second); the final one always does. */
export const PROGRESS_INTERVAL_MS = 100;

/**
 * Lets through one call per interval, and always a final one (the caller says what is final: the
 * last step, a change of phase). The one progress throttle of the worker, the service and re-shard.
 */
export function throttle(intervalMs = PROGRESS_INTERVAL_MS): (final: boolean) => boolean {
  let last = -Infinity;
  return (final) => {
    const now = performance.now();
    if (!final && now - last < intervalMs) return false;
    last = now;
    return true;
  };
}
