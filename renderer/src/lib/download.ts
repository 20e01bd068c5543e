// Saves text the UI made (a JSON or HTML report) as a file, through the browser's download.

export function downloadText(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** `ckpt-verify-2025-01-31T12-00-00-000Z.json`: a name that sorts by time and is valid everywhere. */
export function stampedName(prefix: string, ext: string): string {
  return `${prefix}-${new Date().toISOString().replace(/[:.]/g, '-')}.${ext}`;
}
