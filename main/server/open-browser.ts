import { spawn } from 'node:child_process';

/** Why the browser will not be opened here, or null when it can be. */
export function noBrowserReason(env: NodeJS.ProcessEnv = process.env, platform: string = process.platform): string | null {
  if (platform === 'linux' && !env['DISPLAY'] && !env['WAYLAND_DISPLAY']) return 'no display (DISPLAY and WAYLAND_DISPLAY are unset)';
  return null;
}

/** Opens `url` in the default browser, best effort: a missing opener is not an error. */
export function openInBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]]
        : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args as string[], { detached: true, stdio: 'ignore', windowsHide: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    /* no opener: the URL is printed anyway */
  }
}
