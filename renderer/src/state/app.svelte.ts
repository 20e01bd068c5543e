// What the whole window shares: the workspace, the open checkpoint and its report, the view
// shown, and the file browser dialog. Views keep their own state in their own modules.
import type { Workspace } from '../../../shared/api.ts';
import type { InspectReport } from '../../../shared/inspect.ts';
import { errorText, getApi, toApiError } from '../api/index.ts';

export type ViewName = 'checkpoint' | 'convert' | 'batch' | 'devices' | 'verify' | 'reshard' | 'diff';
export const VIEWS: readonly ViewName[] = ['checkpoint', 'convert', 'batch', 'devices', 'verify', 'reshard', 'diff'];

export type PickMode = 'file' | 'folder' | 'save';

export interface BrowserRequest {
  mode: PickMode;
  title: string;
  start: string;
  /** for 'save': the file name proposed */
  name?: string;
  done(path: string | null): void;
}

const RECENT_LIMIT = 12;

class AppState {
  view = $state<ViewName>('checkpoint');
  workspace = $state<Workspace | null>(null);
  startError = $state<string | null>(null);
  recent = $state<string[]>([]);

  file = $state<string | null>(null);
  /** raw: a report can hold 100,000 tensors; it is replaced, never edited */
  report = $state.raw<InspectReport | null>(null);
  loading = $state(false);
  openError = $state<{ kind: string; message: string } | null>(null);

  browser = $state<BrowserRequest | null>(null);
  /** a short message shown at the bottom of the window */
  toast = $state<string | null>(null);

  private openSeq = 0;

  async start(): Promise<void> {
    const api = getApi();
    try {
      this.workspace = await api.getWorkspace();
    } catch (e) {
      this.startError = errorText(e);
      return;
    }
    this.recent = this.workspace.recent.slice(0, RECENT_LIMIT);
    const route = readRoute();
    if (route.view) this.view = route.view;
    const first = route.file ?? this.recent[0] ?? this.workspace.sampleFile;
    await this.open(first, { remember: route.file !== undefined || this.recent.length > 0 });
  }

  /** Follows the address when it is changed by hand or by a link (`#/devices?file=…`). */
  followRoute(): void {
    const route = readRoute();
    if (route.view && route.view !== this.view) this.view = route.view;
    if (route.file && route.file !== this.file) this.open(route.file);
  }

  /** Opens a checkpoint: inspects it and, when that works, puts it first in the recent list. */
  async open(file: string, opts: { remember?: boolean } = {}): Promise<void> {
    const seq = ++this.openSeq;
    this.file = file;
    this.loading = true;
    this.openError = null;
    writeRoute(this.view, file);
    try {
      const report = await getApi().inspect(file);
      if (seq !== this.openSeq) return;
      this.report = report;
      if (opts.remember !== false) {
        this.recent = [file, ...this.recent.filter((f) => f !== file)].slice(0, RECENT_LIMIT);
        getApi()
          .addRecent(file)
          .catch(() => undefined);
      }
    } catch (e) {
      if (seq !== this.openSeq) return;
      this.report = null;
      this.openError = toApiError(e).info;
    } finally {
      if (seq === this.openSeq) this.loading = false;
    }
  }

  show(view: ViewName): void {
    this.view = view;
    writeRoute(view, this.file);
  }

  /** Asks for a path: the native dialog in Electron, the in-app browser in a web page. */
  async pick(mode: PickMode, opts: { title: string; suggested?: string | null }): Promise<string | null> {
    const ws = this.workspace;
    if (ws?.nativeDialogs) {
      try {
        return await getApi().chooseFile(mode, opts.suggested ?? undefined);
      } catch (e) {
        this.notify(errorText(e));
        return null;
      }
    }
    const suggested = opts.suggested ?? '';
    let start = ws?.home ?? '/';
    let name: string | undefined;
    if (suggested) {
      const cut = Math.max(suggested.lastIndexOf('/'), suggested.lastIndexOf('\\'));
      if (mode === 'folder') start = suggested;
      else if (cut > 0) {
        start = suggested.slice(0, cut);
        name = suggested.slice(cut + 1);
      }
    } else if (this.file) {
      const cut = Math.max(this.file.lastIndexOf('/'), this.file.lastIndexOf('\\'));
      if (cut > 0) start = this.file.slice(0, cut);
    }
    return new Promise((resolve) => {
      this.browser = {
        mode,
        title: opts.title,
        start,
        ...(name !== undefined ? { name } : {}),
        done: (path) => {
          this.browser = null;
          resolve(path);
        },
      };
    });
  }

  notify(message: string): void {
    this.toast = message;
    const shown = message;
    setTimeout(() => {
      if (this.toast === shown) this.toast = null;
    }, 6000);
  }
}

export const app = new AppState();

/** The address keeps the view and the open file: `#/convert?file=/path/to/model.pt`. */
function readRoute(): { view?: ViewName; file?: string } {
  const m = /^#\/([a-z]+)(?:\?(.*))?$/.exec(location.hash);
  if (!m) return {};
  const view = (VIEWS as readonly string[]).includes(m[1]!) ? (m[1] as ViewName) : undefined;
  const file = new URLSearchParams(m[2] ?? '').get('file') ?? undefined;
  return { ...(view ? { view } : {}), ...(file ? { file } : {}) };
}

function writeRoute(view: ViewName, file: string | null): void {
  const q = file ? `?${new URLSearchParams({ file })}` : '';
  history.replaceState(history.state, '', `${location.pathname}${location.search}#/${view}${q}`);
}
