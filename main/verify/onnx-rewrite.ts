/**
 * Writes an ONNX model back with some initializers' data replaced. Every other byte of the model
 * and graph is copied as it was; replaced initializers become `TensorProto{dims, data_type, name,
 * raw_data}`. Initializers whose data is external are inlined, so the result loads from memory
 * without the files beside the original (onnxruntime resolves external paths against a model
 * path, which a buffer does not have). Protobuf's 2 GiB message limit bounds what this can write.
 */
import { fail } from '../errors.ts';
import { initializerBytes, ONNX_TYPES, type OnnxInitializer, type OnnxModel } from '../formats/onnx/onnx-model.ts';
import { PbWriter } from '../formats/onnx/protobuf.ts';

const MAX_MODEL = 2 ** 31 - 1;

export function tensorProto(t: Pick<OnnxInitializer, 'name' | 'dims' | 'dataType'>, raw: Uint8Array): PbWriter {
  const w = new PbWriter();
  for (const d of t.dims) w.varintField(1, d);
  w.varintField(2, t.dataType);
  w.stringField(8, t.name);
  w.bytesField(9, raw);
  return w;
}

/** The model's bytes with `replace` (initializer name → little-endian data) applied. */
export function rewriteModel(model: OnnxModel, replace: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const b = model.bytes;
  const byStart = new Map(model.initializers.map((t) => [t.field.start, t] as const));
  const graph = new PbWriter();
  for (const f of model.graphFields) {
    const t = f.no === 5 ? byStart.get(f.start) : undefined;
    if (t && (replace.has(t.name) || t.external)) {
      const raw = replace.get(t.name) ?? initializerBytes(model, t);
      if (raw.length !== t.numel * ONNX_TYPES[t.dataType]![1])
        fail('internal', `replacement data for ${t.name} has ${raw.length} bytes, not ${t.numel} ${t.dtype} elements`);
      graph.partsField(5, tensorProto(t, raw).chunks());
    } else graph.raw(b.subarray(f.start, f.end));
  }
  const out = new PbWriter();
  let o = 0;
  const top = model.graphField;
  out.raw(b.subarray(o, top.start));
  out.partsField(7, graph.chunks());
  o = top.end;
  out.raw(b.subarray(o));
  if (out.length > MAX_MODEL)
    fail(
      'too-large',
      `${model.file}: with the checkpoint's weights inlined the model is ${out.length} bytes, over protobuf's 2 GiB limit; verify cannot load models this large yet`,
      model.file,
    );
  return out.finish();
}
