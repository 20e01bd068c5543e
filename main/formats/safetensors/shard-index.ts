/**
 * Sharded checkpoints as Hugging Face writes them: an index JSON beside the shard files,
 * `{"metadata": {"total_size": N}, "weight_map": {tensor name: shard file name}}`
 * (`model.safetensors.index.json`, `pytorch_model.bin.index.json`; transformers
 * `modeling_utils.py` `load_sharded_checkpoint`, huggingface_hub `split_torch_state_dict_into_shards`).
 * Shard names are resolved in the index's folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { asCheckpointError, fail } from '../../errors.ts';
import { FileReader } from '../../io/random-access.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { PyDict } from '../values/python-values.ts';
import type { TorchStorage, TorchTensor } from '../values/torch-values.ts';
import { notRegularFileMessage, specialFileKind } from '../../io/file-kind.ts';
import { looksLikeSafetensors, readSafetensors } from './safetensors.ts';
import { JsonObject, jsonToPlain, parseOrderedJson } from './ordered-json.ts';

/** Indexes are a few MB at most even for thousands of tensors. */
export const MAX_INDEX_BYTES = 64 << 20;

export interface ShardIndex {
  path: string;
  /** the folder shard names are resolved in */
  dir: string;
  metadata: Record<string, unknown>;
  /** tensor name -> shard file name, in file order */
  weightMap: Map<string, string>;
  /** unique shard file names, in first-seen order */
  shards: string[];
  /** shard file names that are not present beside the index */
  missing: string[];
}

/** `*.index.json`, the HF naming of shard indexes. */
export function isShardIndexName(p: string): boolean {
  return /\.index\.json$/i.test(p);
}

export function readShardIndex(indexPath: string): ShardIndex {
  const invalid = (why: string): never => fail('not-a-checkpoint', `${indexPath}: shard index is invalid: ${why}`, indexPath);
  let text: string;
  try {
    const st = fs.statSync(indexPath);
    if (st.isDirectory()) fail('io', `${indexPath}: is a folder, not a file`, indexPath);
    const special = specialFileKind(st);
    if (special) fail('unsupported', notRegularFileMessage(indexPath, special), indexPath);
    if (st.size > MAX_INDEX_BYTES) fail('too-large', `${indexPath}: ${st.size} bytes is too large for a shard index`, indexPath);
    text = fs.readFileSync(indexPath, 'utf8');
  } catch (e) {
    throw asCheckpointError(e, indexPath);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let json;
  try {
    json = parseOrderedJson(text);
  } catch (e) {
    return invalid((e as Error).message);
  }
  if (!(json instanceof JsonObject)) return invalid('it is not a JSON object');
  const wm = json.get('weight_map');
  if (!(wm instanceof JsonObject)) return invalid('it has no "weight_map" object');
  const md = json.get('metadata');
  if (md !== undefined && md !== null && !(md instanceof JsonObject)) return invalid('"metadata" is not an object');
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  const seen = new Set<string>();
  for (const [name, shard] of wm.entries) {
    if (typeof shard !== 'string' || shard === '') return invalid(`weight_map entry ${JSON.stringify(name)} is not a file name`);
    if (path.isAbsolute(shard) || /^[a-zA-Z]:/.test(shard) || shard.split(/[\\/]/).includes('..'))
      return invalid(`shard name ${JSON.stringify(shard)} points outside the index's folder`);
    // an index that names an index (itself, or one that names it back) would be opened for ever
    if (isShardIndexName(shard))
      return invalid(
        `weight_map entry ${JSON.stringify(name)} names ${JSON.stringify(shard)}, ${path.basename(shard) === path.basename(indexPath) ? 'the index itself' : 'another index'}; shards are tensor files`,
      );
    weightMap.set(name, shard);
    if (!seen.has(shard)) {
      seen.add(shard);
      shards.push(shard);
    }
  }
  const dir = path.dirname(indexPath);
  const missing = shards.filter((s) => {
    try {
      return !fs.statSync(path.join(dir, s)).isFile();
    } catch {
      return true;
    }
  });
  const metadata = md instanceof JsonObject ? (jsonToPlain(md) as Record<string, unknown>) : {};
  return { path: indexPath, dir, metadata, weightMap, shards, missing };
}

/** One line naming the missing shards, for the error a caller raises before reading tensors. */
export function missingShardsMessage(index: ShardIndex): string {
  const list = index.missing.slice(0, 5).join(', ') + (index.missing.length > 5 ? `, and ${index.missing.length - 5} more` : '');
  return `${index.path}: ${index.missing.length} of ${index.shards.length} shard files are missing beside the index: ${list}; put them in ${index.dir || '.'}`;
}

/**
 * Opens every safetensors shard of an index and joins them into one state dict, in weight_map
 * order. Every weight_map entry must be in its shard; tensors a shard holds beyond the map are
 * kept at the end, with a note.
 */
export function readSafetensorsShards(indexPath: string): FormatReading {
  const index = readShardIndex(indexPath);
  if (index.missing.length) fail('io', missingShardsMessage(index), indexPath);
  const readings = new Map<string, FormatReading>();
  try {
    for (const shard of index.shards) {
      const file = path.join(index.dir, shard);
      const reader = new FileReader(file);
      try {
        if (!looksLikeSafetensors(reader))
          fail(
            'unsupported',
            `${file}: shard listed in ${path.basename(indexPath)} is not a safetensors file; torch .bin shard sets are read through the torch reader`,
            file,
          );
        readings.set(shard, readSafetensors(reader));
      } catch (e) {
        reader.close();
        throw e;
      }
    }
    return combine(index, readings);
  } catch (e) {
    for (const r of readings.values()) r.close();
    throw asCheckpointError(e, indexPath);
  }
}

function combine(index: ShardIndex, readings: Map<string, FormatReading>): FormatReading {
  const root = new PyDict(true);
  const notes: string[] = [];
  const used = new Set<string>();
  for (const [name, shard] of index.weightMap) {
    const t = (readings.get(shard)!.root as PyDict).get(name);
    if (t === undefined)
      fail('not-a-checkpoint', `${index.path}: the index puts tensor ${JSON.stringify(name)} in ${shard}, but that shard has no such tensor`, index.path);
    root.set(name, t);
    used.add(name);
  }
  for (const [shard, reading] of readings) {
    const extra = (reading.root as PyDict).entries.filter(([k]) => !used.has(k as string));
    for (const [k, v] of extra) {
      if (root.has(k)) fail('not-a-checkpoint', `${index.path}: tensor ${JSON.stringify(k)} is in more than one shard (also in ${shard})`, index.path);
      root.set(k, v);
    }
    if (extra.length) notes.push(`${shard} holds ${extra.length} tensor(s) the index does not list; they are included`);
  }

  const records: Record<string, string> = { index: path.basename(index.path), shards: String(index.shards.length) };
  for (const [k, v] of Object.entries(index.metadata)) records[`index.${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  // Shard `__metadata__` (usually {"format": "pt"}): shown when every shard agrees.
  const all = [...readings.values()].map((r) => r.records);
  const keys = new Set(all.flatMap((r) => Object.keys(r).filter((k) => k.startsWith('metadata.'))));
  for (const k of keys) {
    const vals = new Set(all.map((r) => r[k]));
    const only = [...vals][0];
    if (vals.size === 1 && only !== undefined) records[k] = only;
    else notes.push(`shards disagree on ${k}`);
  }
  const total = index.metadata.total_size;
  if (typeof total === 'number') {
    const storages = new Set<TorchStorage>();
    for (const [, v] of root.entries) if ((v as TorchTensor).storage) storages.add((v as TorchTensor).storage!);
    const bytes = [...storages].reduce((a, s) => a + s.nbytes, 0);
    if (bytes !== total) notes.push(`the index says total_size ${total} but the shards hold ${bytes} bytes of tensors`);
  }
  return {
    format: 'safetensors',
    records,
    root,
    globals: [],
    notes,
    close: () => {
      for (const r of readings.values()) r.close();
    },
  };
}
