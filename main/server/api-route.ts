/**
 * `POST /api/<method>`: a JSON array of arguments in, the JSON result out, or `{error}` with a
 * status that says whose fault it is (4xx: the request or the file, 5xx: ours).
 */
import { closeAfterAnswer, REQUEST_LIMITS } from './request-limits.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CheckpointApi } from '../../shared/api.ts';
import type { ErrorInfo, ErrorKind } from '../../shared/errors.ts';
import { API_PREFIX } from '../../shared/web-transport.ts';
import { callMethod } from '../service/call-method.ts';
import { isApiMethod } from '../../shared/api-schema.ts';

/** Requests larger than this are refused (arguments are paths and rules, never data)... */
export const MAX_BODY = 1 << 20;
/** ...except a verify report sent back to be rendered as HTML (its predictions list grows with the test set). */
export const MAX_REPORT_BODY = 64 << 20;
const bodyLimit = (method: string): number => (method === 'verifyReportHtml' || method === 'uploadDroppedFile' ? MAX_REPORT_BODY : MAX_BODY);

export function statusFor(kind: ErrorKind): number {
  switch (kind) {
    case 'usage':
      return 400;
    case 'exists':
    case 'cancelled':
      return 409;
    case 'internal':
      return 500;
    default:
      return 422; // the file: not a checkpoint, damaged, unreadable, unsupported
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export const sendError = (res: ServerResponse, status: number, error: ErrorInfo, headers: Record<string, string>): void =>
  sendJson(res, status, { error }, headers);

function readBody(req: IncomingMessage, limit: number): Promise<string | null | 'slow'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // a body that trickles in would hold its request (and its memory) open for ever
    const deadline = setTimeout(() => resolve('slow'), REQUEST_LIMITS.bodyTimeMs);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
      else chunks.length = 0; // too large: keep nothing; the answer is a 413
    });
    req.on('end', () => {
      clearTimeout(deadline);
      resolve(size > limit ? null : Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (e) => {
      clearTimeout(deadline);
      reject(e);
    });
  });
}

export async function handleApi(
  service: CheckpointApi,
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  headers: Record<string, string>,
): Promise<void> {
  const usage = (status: number, message: string): void => sendError(res, status, { kind: 'usage', message }, headers);
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    return usage(405, `${pathname} takes POST with a JSON array of arguments`);
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return usage(415, 'API calls take Content-Type: application/json');
  const limit = bodyLimit(pathname.slice(API_PREFIX.length));
  const body = await readBody(req, limit);
  if (body === 'slow') {
    closeAfterAnswer(req, res);
    return usage(408, `the request body did not arrive within ${REQUEST_LIMITS.bodyTimeMs / 1000} s`);
  }
  if (body === null) {
    res.setHeader('Connection', 'close');
    return usage(413, `the request is larger than ${limit} bytes`);
  }
  let args: unknown;
  try {
    args = body.trim() === '' ? [] : JSON.parse(body);
  } catch {
    return usage(400, 'the request body is not JSON');
  }
  const method = pathname.slice(API_PREFIX.length);
  if (!isApiMethod(method)) return usage(404, `unknown API method '${method.slice(0, 60)}'`);
  const r = await callMethod(service, method, args);
  if (r.ok) sendJson(res, 200, r.value, headers);
  else sendError(res, statusFor(r.error.kind), r.error, headers);
}
