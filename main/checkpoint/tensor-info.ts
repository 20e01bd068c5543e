// A tensor as inspect's report lists it (`TensorInfo`), as an object or straight as its JSON text.
import type { TensorInfo } from '../../shared/inspect.ts';
import type { TorchStorage, TorchTensor } from '../formats/values/torch-values.ts';
import { TensorInContainer, type PathKey, type TensorAt } from './tree.ts';

/** The storage a tensor's bytes really live in (legacy views point into a root storage). */
export function rootStorage(s: TorchStorage): TorchStorage {
  return s.viewOf ?? s;
}

/** Each tensor of a whole pickled module: its state-dict paths, in order; used up as tensors are listed. */
export type StatePaths = Map<TorchTensor, PathKey[][]>;

/** A tensor as the report lists it. `statePaths` is used up: each call takes the tensor's next state-dict path. */
export function tensorInfo(at: TensorAt, shared: ReadonlySet<TorchStorage>, statePaths: StatePaths): TensorInfo {
  const t = at.tensor;
  const info: TensorInfo = {
    path: at.path,
    dtype: t.dtype.name,
    shape: t.shape,
    stride: t.stride,
    storageOffset: t.storageOffset,
    device: t.device,
    nbytes: t.nbytes,
    requiresGrad: t.requiresGrad,
    isParameter: t.isParameter,
    storage: t.storage ? rootStorage(t.storage).key : null,
    shared: t.storage ? shared.has(rootStorage(t.storage)) : false,
    kind: t.subclass ?? t.kind,
  };
  const statePath = statePaths.size ? statePaths.get(t)?.shift() : undefined;
  if (statePath) info.statePath = statePath;
  return info;
}

/** A first guess of a tensor's JSON size (a state dict's tensors take ~240 bytes) */
const BYTES_PER_TENSOR = 256;

/** Texts a writer keeps at most: past it a cache starts again (a file of a million distinct devices or shapes). */
const MAX_CACHED = 4096;

/**
 * `JSON.stringify(tensorInfo(...))`, byte for byte, without the object: a 100,000-tensor
 * `inspect --json` made 100,000 objects (and their path arrays) only to turn them into text, and
 * that garbage was most of the collector's work after unpickling. What repeats is made once:
 * the path's container part per container (a state dict's tensors share it), the shape and
 * stride per array (`internDims` shares them), dtype, device and kind names per name. The keys
 * are in `tensorInfo`'s order (`statePath` last, as it is set last).
 */
export class TensorInfoWriter {
  private container: readonly PathKey[] | null = null;
  /** the container's path as JSON without its closing `]` */
  private containerHead = '';
  private readonly dims = new Map<readonly number[], string>();
  private readonly names = new Map<string, string>();
  /** the tensor `middle` was made for, its nbytes, and the text */
  private middleOf: TorchTensor | null = null;
  private middleNbytes = 0;
  private middle = '';

  constructor(
    private readonly shared: ReadonlySet<TorchStorage>,
    private readonly statePaths: StatePaths,
  ) {}

  json(at: TensorAt): string {
    const t = at.tensor;
    const storage = t.storage ? rootStorage(t.storage) : null;
    const statePath = this.statePaths.size ? this.statePaths.get(t)?.shift() : undefined;
    return (
      `{"path":${this.pathJson(at)},${this.middleJson(t)},"storage":${storage ? stringJson(storage.key) : 'null'}` +
      `,"shared":${storage ? this.shared.has(storage) : false},"kind":${this.name(t.subclass ?? t.kind)}` +
      `${statePath ? `,"statePath":${JSON.stringify(statePath)}` : ''}}`
    );
  }

  /**
   * `"dtype":…` to `"isParameter":…`, made again only when a field differs from the last
   * tensor's: a state dict's tensors in a row mostly share all of them. Each tensor's text is
   * then a few strings, not ~25 (the rope that is flattened when the text is written).
   */
  private middleJson(t: TorchTensor): string {
    const last = this.middleOf;
    const nbytes = t.nbytes;
    if (
      last === null ||
      last.dtype !== t.dtype ||
      last.shape !== t.shape ||
      last.stride !== t.stride ||
      last.storageOffset !== t.storageOffset ||
      last.device !== t.device ||
      this.middleNbytes !== nbytes ||
      last.requiresGrad !== t.requiresGrad ||
      last.isParameter !== t.isParameter
    ) {
      this.middleOf = t;
      this.middleNbytes = nbytes;
      this.middle = flat(
        `"dtype":${this.name(t.dtype.name)},"shape":${this.dimsJson(t.shape)},"stride":${this.dimsJson(t.stride)}` +
          `,"storageOffset":${numberJson(t.storageOffset)},"device":${this.name(t.device)},"nbytes":${numberJson(nbytes)}` +
          `,"requiresGrad":${t.requiresGrad},"isParameter":${t.isParameter}`,
      );
    }
    return this.middle;
  }

  /**
   * `json` of `tensors[from, to)` joined by commas, as UTF-8 bytes: each tensor's text is encoded
   * into one buffer as it is made. The same text joined first is a rope of ~100,000 small strings
   * per 4,096 tensors, and flattening it to write it cost more than making it (100,000 tensors:
   * 173-207 ms as text, 86-160 ms as bytes, made and encoded, in a fresh process).
   */
  utf8(tensors: readonly TensorAt[], from: number, to: number): Uint8Array {
    let bytes = Buffer.allocUnsafe(Math.max(1024, (to - from) * BYTES_PER_TENSOR));
    let at = 0;
    for (let i = from; i < to; i++) {
      const text = this.json(tensors[i]!);
      const most = text.length * 3 + 1; // UTF-8 takes at most 3 bytes per UTF-16 unit
      if (at + most > bytes.length) {
        const bigger = Buffer.allocUnsafe(Math.max(bytes.length * 2, at + most));
        bytes.copy(bigger, 0, 0, at);
        bytes = bigger;
      }
      if (i > from) bytes[at++] = 0x2c; // ','
      at += bytes.write(text, at, 'utf8');
    }
    return bytes.subarray(0, at);
  }

  private pathJson(at: TensorAt): string {
    if (!(at instanceof TensorInContainer)) return JSON.stringify(at.path);
    if (at.container !== this.container) {
      this.container = at.container;
      this.containerHead = JSON.stringify(at.container).slice(0, -1);
    }
    if (at.key === undefined) return `${this.containerHead}]`;
    return `${this.containerHead}${at.container.length ? ',' : ''}${typeof at.key === 'string' ? stringJson(at.key) : JSON.stringify(at.key)}]`;
  }

  private dimsJson(dims: readonly number[]): string {
    return cachedJson(this.dims, dims);
  }

  private name(s: string): string {
    return cachedJson(this.names, s);
  }
}

/** `s` as one flat string: a text kept and joined into many others is copied out of its rope once, not at every write. */
function flat(s: string): string {
  // V8 flattens a rope in place when a character is read from it
  s.charCodeAt(0);
  return s;
}

/** `JSON.stringify(value)`, kept in `texts` (which starts again past `MAX_CACHED`). */
function cachedJson<T>(texts: Map<T, string>, value: T): string {
  let text = texts.get(value);
  if (text === undefined) {
    if (texts.size >= MAX_CACHED) texts.clear();
    texts.set(value, (text = JSON.stringify(value)));
  }
  return text;
}

/** `JSON.stringify(n)`: the number's own text when finite (ECMA-262 SerializeJSONProperty), else what JSON.stringify says. */
function numberJson(n: number): string {
  return Number.isFinite(n) ? `${n}` : JSON.stringify(n);
}

/** What JSON.stringify escapes in a string: `"`, `\\`, control characters and (lone) surrogates. */
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/** `JSON.stringify(s)`: a string with nothing to escape is only quoted (a test is about twice as fast as the call). */
function stringJson(s: string): string {
  return ESCAPED.test(s) ? JSON.stringify(s) : `"${s}"`;
}
