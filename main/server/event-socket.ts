/**
 * `/api/events`: a WebSocket per page that carries every ApiEvent as one JSON text message.
 * Server to client only. A client too slow to read loses progress events, never the others.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ApiEvent, CheckpointApi } from '../../shared/api.ts';

/** Progress is dropped while this much is still queued for a client. */
const SLOW_CLIENT_BYTES = 4 << 20;
const PING_MS = 30_000;

export class EventSockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  private readonly alive = new WeakMap<WebSocket, boolean>();
  private readonly ping: ReturnType<typeof setInterval>;

  constructor(private readonly service: CheckpointApi) {
    this.wss.on('connection', (ws) => this.attach(ws));
    this.ping = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (this.alive.get(ws) === false) ws.terminate();
        else {
          this.alive.set(ws, false);
          ws.ping();
        }
      }
    }, PING_MS);
    this.ping.unref();
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
  }

  private attach(ws: WebSocket): void {
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    const unsubscribe = this.service.onEvent((e: ApiEvent) => {
      if (ws.readyState !== ws.OPEN) return;
      if ((e.type === 'job-progress' || e.type === 'batch-progress') && ws.bufferedAmount > SLOW_CLIENT_BYTES) return;
      ws.send(JSON.stringify(e));
    });
    ws.on('message', () => ws.close(1003, 'this socket only sends'));
    ws.on('close', unsubscribe);
    ws.on('error', () => ws.terminate());
  }

  close(): void {
    clearInterval(this.ping);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}
