/**
 * `ckpt serve`: the app in a browser. Prints one line with the URL and its token on stdout
 * (`Checkpoint Workstation: http://127.0.0.1:PORT/?token=TOKEN`), everything else on stderr,
 * and serves until Ctrl+C.
 */
import { parseArgs } from 'node:util';
import { STARTUP_PREFIX } from '../../shared/web-transport.ts';
import { fail } from '../errors.ts';
import { noBrowserReason, openInBrowser } from '../server/open-browser.ts';
import { isLoopback } from '../server/security.ts';
import { startWebServer, type WebServer } from '../server/web-server.ts';
import type { CliIO } from './io.ts';

export const DEFAULT_PORT = 7860;
/** a token the user chooses: long enough not to be guessed over a tunnel */
export const MIN_TOKEN_LENGTH = 16;

export const SERVE_USAGE = 'usage: ckpt serve [--port N] [--host 127.0.0.1] [--token T] [--allow-host NAME] [--no-open]';

export const SERVE_HELP = `${SERVE_USAGE}

Serves the app to a web browser: the same UI as the desktop app, for machines without a
display. Open it through an SSH tunnel on any local port, e.g.
  ssh -L 8888:127.0.0.1:${DEFAULT_PORT} gpu-box     then http://127.0.0.1:8888/?token=TOKEN

  --port N           listen on port N (default ${DEFAULT_PORT}, or a free one if it is taken; 0: a free one)
  --host ADDR        listen on ADDR (default 127.0.0.1; anything else exposes your files to the network)
  --token T          the session token (default: the CKPT_TOKEN environment variable, else a new
                     random one each start); at least ${MIN_TOKEN_LENGTH} of A-Z a-z 0-9 _ -
  --allow-host NAME  also accept requests addressed to NAME (or NAME:PORT), e.g. a reverse
                     proxy's name; repeatable. Loopback names are accepted on any port.
  --no-open          do not open a browser

The first line on stdout is the URL to open, with its session token:
  ${STARTUP_PREFIX}http://127.0.0.1:PORT/?token=TOKEN`;

export interface ServeOptions {
  /** stops the server (tests); otherwise SIGINT/SIGTERM do */
  signal?: AbortSignal;
}

export async function runServe(args: string[], io: CliIO, opts: ServeOptions = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      token: { type: 'string' },
      'allow-host': { type: 'string', multiple: true },
      'no-open': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(SERVE_HELP + '\n');
    return 0;
  }
  if (positionals.length) fail('usage', `serve takes no file or folder (got '${positionals[0]}'); the app opens the sample workspace`);
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? '0') || !Number.isInteger(port) || port > 65535)
    fail('usage', `--port takes a port number from 0 to 65535 (got '${values.port}')`);
  const host = values.host ?? '127.0.0.1';
  if (!/^[\w.:[\]-]{1,255}$/.test(host)) fail('usage', `--host takes an address such as 127.0.0.1 (got '${host}')`);
  if (!isLoopback(host)) {
    io.stderr(
      `WARNING: serving on ${host}, which is not this machine's loopback address. Anyone who can reach it\n` +
        `WARNING: and learns the token can read and write your files. Prefer --host 127.0.0.1 and an SSH tunnel.\n`,
    );
  }

  const token = chosenToken(values.token, process.env['CKPT_TOKEN']);
  const allowHosts = values['allow-host'] ?? [];
  for (const name of allowHosts) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(name))
      fail('usage', `--allow-host takes a host name such as ckpt.example.org or ckpt.example.org:443 (got '${name.slice(0, 100)}')`);
  }
  const server = await listen({ host, port, allowHosts, ...(token !== undefined ? { token } : {}) }, values.port !== undefined, io);
  // The handlers go in before the URL is printed: whoever reads the URL may stop the server at
  // once, and a SIGTERM that arrived before them would kill the process without a clean stop.
  const stopped = new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      opts.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (opts.signal?.aborted) stop();
    else opts.signal?.addEventListener('abort', stop);
  });
  io.stdout(`${STARTUP_PREFIX}${server.url}\n`);
  const why = values['no-open'] ? 'not opening a browser (--no-open)' : noBrowserReason();
  if (why) io.stderr(`${why}; open the URL above in a browser. Press Ctrl+C to stop.\n`);
  else {
    io.stderr('opening it in your browser. Press Ctrl+C to stop.\n');
    openInBrowser(server.url);
  }

  await stopped;
  io.stderr('stopping: cancelling running jobs\n');
  await server.close();
  return 0;
}

/** `--token`, else `CKPT_TOKEN`, else undefined (a new random one). */
function chosenToken(flag: string | undefined, env: string | undefined): string | undefined {
  const [token, from] = flag !== undefined ? [flag, '--token'] : env ? [env, 'CKPT_TOKEN'] : [undefined, ''];
  if (token !== undefined && !new RegExp(`^[A-Za-z0-9_-]{${MIN_TOKEN_LENGTH},512}$`).test(token)) {
    fail(
      'usage',
      `${from} must be at least ${MIN_TOKEN_LENGTH} characters of A-Z a-z 0-9 _ - (got ${token.length} characters${/[^A-Za-z0-9_-]/.test(token) ? ', some of them not allowed' : ''})`,
    );
  }
  return token;
}

/** The default port falls back to a free one when taken; a port asked for does not. */
async function listen(opts: { host: string; port: number; token?: string; allowHosts: string[] }, asked: boolean, io: CliIO): Promise<WebServer> {
  const { host, port } = opts;
  try {
    return await startWebServer(opts);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' && !asked) {
      const server = await startWebServer({ ...opts, port: 0 });
      io.stderr(`port ${port} is taken; using port ${server.port} instead\n`);
      return server;
    }
    if (code === 'EADDRINUSE') fail('io', `port ${port} is already in use; choose another --port, or --port 0 for a free one`);
    if (code === 'EACCES') fail('io', `not allowed to listen on port ${port}; use a port above 1023`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') fail('usage', `--host ${host} is not an address of this machine`);
    throw e;
  }
}
