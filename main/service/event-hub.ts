import type { ApiEvent } from '../../shared/api.ts';

/**
 * The listeners of pushed events (a window, web-mode sockets, tests). A listener that throws is
 * dropped from that one delivery, never from the others.
 */
export class EventHub {
  private readonly listeners = new Set<(e: ApiEvent) => void>();

  constructor(private readonly onEmpty: () => void = () => {}) {}

  get size(): number {
    return this.listeners.size;
  }

  subscribe(listener: (e: ApiEvent) => void): () => void {
    const own = (e: ApiEvent): void => listener(e);
    this.listeners.add(own);
    return () => {
      if (this.listeners.delete(own) && this.listeners.size === 0) this.onEmpty();
    };
  }

  emit(e: ApiEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a broken listener must not stop a job or the other listeners */
      }
    }
  }
}
