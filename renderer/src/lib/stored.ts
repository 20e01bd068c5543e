// Small values the window keeps across reloads in localStorage: never an error when storage is
// missing, full or private, only nothing remembered.

/** The JSON value stored under `key`, or null when there is none or it does not parse. */
export function loadStored(key: string): unknown {
  try {
    return JSON.parse(globalThis.localStorage?.getItem(key) ?? 'null') as unknown;
  } catch {
    return null;
  }
}

/** Stores `value` as JSON under `key`; false when storage refused it (full, private mode). */
export function store(key: string, value: unknown): boolean {
  try {
    globalThis.localStorage?.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

export function forget(key: string): void {
  try {
    globalThis.localStorage?.removeItem(key);
  } catch {
    /* nothing stored, nothing to forget */
  }
}
