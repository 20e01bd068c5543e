/**
 * What a web-mode request may cost before it is answered, beside who may send it (security.ts):
 * one Host header only (a second one could disagree with the first that the checks read), no
 * body read after a refusal, a deadline for the body of an accepted call, and the `?token=`
 * query only where a person opens the app (the page), never on an API call, where it would sit in
 * logs and histories.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TOKEN_QUERY } from '../../shared/web-transport.ts';

/** The whole body of an API call must arrive within `bodyTimeMs` (a 64 MiB report takes well under a second on loopback); tests shorten it. */
export const REQUEST_LIMITS = { bodyTimeMs: 30_000 };

/** How many Host headers the request carried (Node keeps only the first in `req.headers`). */
export function hostHeaderCount(req: IncomingMessage): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') n++;
  return n;
}

/** API calls authenticate by cookie or bearer header: a token in their URL is ignored. */
export function withoutApiToken(url: URL, isApi: boolean): URL {
  if (!isApi || !url.searchParams.has(TOKEN_QUERY)) return url;
  const bare = new URL(url);
  bare.searchParams.delete(TOKEN_QUERY);
  return bare;
}

/**
 * After a refusal the request's body is not read: the connection closes once the answer is
 * sent, instead of Node draining whatever the client keeps sending.
 */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Connection', 'close');
  res.once('finish', () => req.destroy());
}
