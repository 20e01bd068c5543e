// What the Verify view fills in from the open checkpoint's folder: the ONNX graph, the model's
// .py and a test set in one of the formats `ckpt verify` reads (main/verify/test-set.ts detects
// which from the path). A guess is made only when it is unambiguous.

export interface FolderEntry {
  name: string;
  kind: 'file' | 'dir';
}

/** The names in `entries` of that kind matching `re`, when there is exactly one. */
function only(entries: readonly FolderEntry[], kind: FolderEntry['kind'], re: RegExp): string | null {
  const hits = entries.filter((e) => e.kind === kind && re.test(e.name));
  return hits.length === 1 ? hits[0]!.name : null;
}

/** The single `.onnx` graph in a folder, or null. */
export function graphIn(entries: readonly FolderEntry[]): string | null {
  return only(entries, 'file', /\.onnx$/i);
}

/** The single `.py` file in a folder (a model's source), or null. */
export function modelSourceIn(entries: readonly FolderEntry[]): string | null {
  return only(entries, 'file', /\.py$/i);
}

/**
 * The test set in a folder, as the name to append to it ('' for the folder itself), or null:
 * a single `.npz`; MNIST idx images (the test split when train and test are both there; the
 * labels file is found beside it); CIFAR batches (`test_batch`, or CIFAR-100's `test` with `meta`:
 * the folder itself); a single folder named as a test set (`mnist`, `cifar-10-batches-py`,
 * `cifar-100-python`, `test`, `val`: idx, CIFAR or ImageFolder, told apart when it is read).
 */
export function testSetIn(entries: readonly FolderEntry[]): string | null {
  const npz = only(entries, 'file', /\.npz$/i);
  if (npz) return npz;
  const idx = entries.filter((e) => e.kind === 'file' && /images-idx3-ubyte(\.gz)?$/i.test(e.name)).map((e) => e.name);
  const idxTest = idx.length === 1 ? idx : idx.filter((n) => /^(t10k|test)/i.test(n));
  if (idxTest.length === 1) return idxTest[0]!;
  const files = new Set(entries.filter((e) => e.kind === 'file').map((e) => e.name));
  if (files.has('test_batch') || (files.has('test') && files.has('meta'))) return '';
  return only(entries, 'dir', /^(mnist|cifar-10-batches-py|cifar-100-python|test|val|validation)$/i);
}
