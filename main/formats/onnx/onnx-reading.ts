/**
 * An ONNX model (`torch.onnx.export`'s output) opened as a checkpoint: its initializers are the
 * graph's weights, shown by name with their shape and dtype, each a lazy tensor over its bytes
 * (`raw_data` inside the file, the external data file beside it, or the typed repeated fields
 * decoded). The graph itself is what Verify binds a checkpoint into; torch.load never reads it.
 */
import { dtypeByName } from '../../../shared/dtypes.ts';
import { fail } from '../../errors.ts';
import { BufferReader, FileReader, type RandomAccessReader } from '../../io/random-access.ts';
import { makeStorage } from '../safetensors/safetensors.ts';
import { headerTensor } from '../values/header-values.ts';
import type { FormatReading } from '../values/format-reading.ts';
import { PyDict } from '../values/python-values.ts';
import { contiguousStrides, type ByteRange } from '../values/torch-values.ts';
import { readOnnxStructure } from './onnx-structure.ts';
import { checkExternalLength, externalPath, initializerBytes, parseOnnxModel, type OnnxInitializer, type OnnxModel } from './onnx-model.ts';

/** ModelProto field tags that follow `ir_version` (onnx/onnx.proto): strings 2-4, 6, 14, 20 and the graph 7, opset_import 8, model_version 5. */
const SECOND_TAGS = new Set([0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0xa2]);

/**
 * Cheap check on the first bytes: a ModelProto opens with `ir_version` (field 1, a small varint:
 * `08 07` for IR 7), then another of its fields. torch.onnx.export writes exactly that order.
 */
export function looksLikeOnnx(head: Uint8Array): boolean {
  return head.length >= 3 && head[0] === 0x08 && head[1]! >= 1 && head[1]! <= 0x7f && SECOND_TAGS.has(head[2]!);
}

/** ONNX's protobuf limit: a model file above 2 GiB keeps its weights in external data. */
const MAX_MODEL_BYTES = 2 ** 31;

export function readOnnx(reader: RandomAccessReader): FormatReading {
  const file = reader.name;
  if (reader.size > MAX_MODEL_BYTES)
    fail('too-large', `${file}: ${reader.size} bytes is over protobuf's 2 GiB limit for an ONNX model; export with external data`, file);
  // the weights stay in the file: a 2 GiB model is not read whole to list its initializers
  const model = parseOnnxModel(readOnnxStructure(reader), file);
  const root = new PyDict(true);
  const externals = new Map<string, FileReader>();
  for (const init of model.initializers) {
    const dtype = dtypeByName(init.dtype);
    if (!dtype) fail('unsupported', `${file}: initializer ${JSON.stringify(init.name)} has dtype ${init.dtype}, which ckpt does not show`, file);
    const nbytes = init.numel * dtype.size;
    const storage = makeStorage(init.name, dtype, nbytes, () => locateInitializer(model, init, reader, externals, nbytes));
    root.set(init.name, headerTensor(dtype, init.dims, contiguousStrides(init.dims), storage));
  }
  const external = model.initializers.filter((i) => i.external).length;
  const records: Record<string, string> = {
    ir_version: String(model.irVersion),
    ...(model.opset !== null ? { opset: String(model.opset) } : {}),
    ...(model.producer ? { producer: model.producer } : {}),
    nodes: String(model.nodes.length),
  };
  // exports with keep_initializers_as_inputs list every initializer as an input too: one set, not a search per input
  const weights = new Set(model.initializers.map((t) => t.name));
  const inputs = model.inputs.filter((i) => !weights.has(i.name));
  const notes = [
    `an ONNX graph: ${model.nodes.length} node${model.nodes.length === 1 ? '' : 's'}, ${inputs.length === 1 ? 'input' : 'inputs'} ${inputs.map((i) => `${i.name} [${(i.dims ?? []).join('×')}]`).join(', ') || '(none)'}; its initializers are listed as tensors`,
    ...(external ? [`${external} initializer${external === 1 ? '' : 's'} kept in external data beside the model`] : []),
  ];
  return {
    format: 'onnx',
    records,
    root,
    globals: [],
    notes,
    close: () => {
      reader.close();
      for (const r of externals.values()) r.close();
    },
  };
}

/** Where an initializer's little-endian bytes lie: in the file, in its external data file, or decoded from the typed fields. */
function locateInitializer(model: OnnxModel, init: OnnxInitializer, reader: RandomAccessReader, externals: Map<string, FileReader>, nbytes: number): ByteRange {
  if (init.external) {
    const full = externalPath(model, init.external.location);
    checkExternalLength(model, init, nbytes);
    let ext = externals.get(full);
    if (!ext) externals.set(full, (ext = new FileReader(full)));
    if (init.external.offset + nbytes > ext.size)
      fail(
        'truncated',
        `${model.file}: ${init.external.location} ends before ${JSON.stringify(init.name)}'s data; the external data file is truncated`,
        model.file,
      );
    return { reader: ext, offset: init.external.offset, length: nbytes };
  }
  const raw = init.fields.find((x) => x.no === 9 && x.wire === 2);
  if (raw && raw.valEnd - raw.valStart === nbytes) return { reader, offset: raw.valStart, length: nbytes };
  return { reader: new BufferReader(initializerBytes(model, init), `${model.file}#${init.name}`), offset: 0, length: nbytes };
}
