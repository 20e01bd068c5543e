/**
 * Size-bounded shard sets as Hugging Face writes them (huggingface_hub
 * `serialization/_base.py` `split_state_dict_into_shards_factory`, transformers `save_pretrained`):
 * tensors are taken in state-dict order; a tensor bigger than the limit gets a shard of its own;
 * otherwise a new shard starts when the next tensor would tip the current one over the limit.
 * Tensors that share a storage go to the shard of the first of them and count once. Files are
 * `model-00001-of-00003.safetensors` or `pytorch_model-00001-of-00003.bin`, with an index
 * `{"metadata": {"total_size": N}, "weight_map": {name: file}}` written as
 * `json.dumps(index, indent=2, sort_keys=True) + "\n"` as transformers' `save_pretrained` writes it
 * (huggingface_hub's `save_torch_state_dict` leaves the keys unsorted; readers do not care). A set
 * that fits in one shard is one file without a suffix and without an index.
 */
import type { ReshardFormat } from '../../shared/reshard.ts';
import { fail } from '../errors.ts';

/** `MAX_SHARD_SIZE` in huggingface_hub: 5 GB, in decimal units as HF counts them. */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** `5GB` (HF's `parse_size_to_int`: decimal units), `500MiB`, `2.5GB`, or plain bytes. */
export function parseShardSize(text: string): number | string {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  if (!m) return `'${text}' is not a size; use e.g. 5GB, 500MB, 2GiB or a number of bytes`;
  const n = Math.floor(Number(m[1]) * (UNITS[(m[2] ?? 'B').toUpperCase()] ?? NaN));
  if (!Number.isSafeInteger(n) || n < 1) return `'${text}' is not a usable shard size`;
  return n;
}

export interface ShardCandidate<T> {
  name: string;
  item: T;
  /** bytes it adds to a shard (0 for a tensor whose storage an earlier one already counts) */
  bytes: number;
  /** tensors with the same storage id go to one shard (null: none shared) */
  storage: object | null;
}

export interface ShardFile<T> {
  name: string;
  entries: { name: string; item: T }[];
  bytes: number;
}

export interface ShardSplit<T> {
  files: ShardFile<T>[];
  totalSize: number;
  /** the index file name, or null for a single unsuffixed file */
  indexName: string | null;
}

export function shardPattern(format: ReshardFormat): { stem: string; ext: string; index: string } {
  return format === 'safetensors'
    ? { stem: 'model', ext: '.safetensors', index: 'model.safetensors.index.json' }
    : { stem: 'pytorch_model', ext: '.bin', index: 'pytorch_model.bin.index.json' };
}

export function splitIntoShards<T>(candidates: ShardCandidate<T>[], maxBytes: number, format: ReshardFormat): ShardSplit<T> {
  const shards: { entries: { name: string; item: T }[]; bytes: number }[] = [];
  let current: { entries: { name: string; item: T }[]; bytes: number } = { entries: [], bytes: 0 };
  const byStorage = new Map<object, { name: string; item: T }[]>();
  const firstOf = new Map<object, string>();
  let total = 0;
  for (const c of candidates) {
    if (c.storage) {
      const group = byStorage.get(c.storage);
      if (group) {
        group.push({ name: c.name, item: c.item });
        continue;
      }
      byStorage.set(c.storage, []);
      firstOf.set(c.storage, c.name);
    }
    const entry = { name: c.name, item: c.item };
    if (c.bytes > maxBytes) {
      total += c.bytes;
      shards.push({ entries: [entry], bytes: c.bytes });
      continue;
    }
    if (current.bytes + c.bytes > maxBytes) {
      shards.push(current);
      current = { entries: [], bytes: 0 };
    }
    current.entries.push(entry);
    current.bytes += c.bytes;
    total += c.bytes;
  }
  if (current.entries.length) shards.push(current);
  // tensors sharing a storage join the shard of the first of them
  for (const [storage, rest] of byStorage) {
    if (!rest.length) continue;
    const first = firstOf.get(storage)!;
    const home = shards.find((s) => s.entries.some((e) => e.name === first));
    if (!home) fail('internal', `shared tensor ${first} was not placed`);
    home.entries.push(...rest);
  }
  const { stem, ext, index } = shardPattern(format);
  if (shards.length <= 1)
    return { files: [{ name: `${stem}${ext}`, entries: shards[0]?.entries ?? [], bytes: shards[0]?.bytes ?? 0 }], totalSize: total, indexName: null };
  const n = shards.length;
  const pad = (i: number): string => String(i).padStart(5, '0');
  return {
    files: shards.map((s, i) => ({ name: `${stem}-${pad(i + 1)}-of-${pad(n)}${ext}`, entries: s.entries, bytes: s.bytes })),
    totalSize: total,
    indexName: index,
  };
}

/** The index JSON text, byte for byte as transformers writes it (sorted keys, indent 2, ASCII). */
export function indexJson(split: ShardSplit<unknown>, extraMetadata: Record<string, number | string> = {}): string {
  const names: [string, string][] = [];
  for (const f of split.files) for (const e of f.entries) names.push([e.name, f.name]);
  // Python sorts str keys by code point
  names.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const lines: string[] = [];
  const str = (s: string): string => JSON.stringify(s).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const meta = Object.entries({ ...extraMetadata, total_size: split.totalSize }).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  lines.push('{');
  lines.push('  "metadata": {');
  meta.forEach(([k, v], i) => lines.push(`    ${str(k)}: ${typeof v === 'number' ? v : str(v)}${i < meta.length - 1 ? ',' : ''}`));
  lines.push('  },');
  lines.push('  "weight_map": {');
  names.forEach(([k, v], i) => lines.push(`    ${str(k)}: ${str(v)}${i < names.length - 1 ? ',' : ''}`));
  lines.push('  }');
  lines.push('}');
  return lines.join('\n') + '\n';
}
