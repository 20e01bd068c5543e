/**
 * Reads an ONNX model (onnx/onnx.proto, `ModelProto`) far enough to bind and replace its weights:
 * the graph's nodes, inputs, outputs and initializers (`TensorProto`), with each initializer's
 * byte range kept so the model can be written back with only those changed (see onnx-rewrite.ts).
 *
 * Tensor data lives in `raw_data` (little-endian, what torch writes), in a typed repeated field
 * (`float_data`, `int32_data`, ...), or, when `data_location` is EXTERNAL, in a file beside the
 * model named by the `location`/`offset`/`length` entries of `external_data` (torch 2.x writes
 * `model.onnx.data`; onnx/external_data_helper.py). Locations must stay inside the model's folder,
 * as onnx's checker and onnxruntime require.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { asCheckpointError, CheckpointError, fail } from '../../errors.ts';
import { readWholeFile } from '../../io/random-access.ts';
import { fieldString, readFields, repeatedInts, type PbField } from './protobuf.ts';

/** TensorProto.DataType → [name, element size]. */
export const ONNX_TYPES: Record<number, [string, number]> = {
  1: ['float32', 4],
  2: ['uint8', 1],
  3: ['int8', 1],
  4: ['uint16', 2],
  5: ['int16', 2],
  6: ['int32', 4],
  7: ['int64', 8],
  9: ['bool', 1],
  10: ['float16', 2],
  11: ['float64', 8],
  12: ['uint32', 4],
  13: ['uint64', 8],
  14: ['complex64', 8],
  15: ['complex128', 16],
  16: ['bfloat16', 2],
};

export interface OnnxInitializer {
  name: string;
  dims: number[];
  dataType: number;
  dtype: string;
  numel: number;
  /** where the TensorProto sits in the model bytes (the whole `initializer` field) */
  field: { start: number; end: number };
  /** the external file, relative to the model, when the data lives outside */
  external: { location: string; offset: number; length: number | null } | null;
  /** the tensor message's own fields (absolute positions) */
  fields: PbField[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  /** numeric attributes (f, i) by name */
  attrs: Record<string, number>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: number | null;
  /** numbers for fixed dims, strings for symbolic ones, '?' for unknown */
  dims: (number | string)[] | null;
}

export interface OnnxModel {
  file: string;
  bytes: Uint8Array;
  irVersion: number;
  producer: string;
  opset: number | null;
  /** the `graph` field of the model, whole (tag included) and its payload */
  graphField: PbField;
  graphFields: PbField[];
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export function loadOnnxModel(file: string): OnnxModel {
  const bytes = readWholeFile(file);
  return parseOnnxModel(bytes, file);
}

export function parseOnnxModel(bytes: Uint8Array, file: string): OnnxModel {
  const what = `${file}`;
  if (bytes.length === 0) fail('not-a-checkpoint', `${file}: the file is empty, not an ONNX model`, file);
  const top = withFile(file, () => readFields(bytes, 0, bytes.length, what));
  const graphField = top.find((f) => f.no === 7 && f.wire === 2);
  const ir = top.find((f) => f.no === 1 && f.wire === 0);
  if (!graphField || !ir) fail('not-a-checkpoint', `${file}: not an ONNX model (no ir_version or graph); export one with torch.onnx.export`, file);
  let producer = '';
  let opset: number | null = null;
  for (const f of top) {
    if (f.no === 2 && f.wire === 2) producer = fieldString(bytes, f);
    if (f.no === 3 && f.wire === 2) producer += ` ${fieldString(bytes, f)}`;
    if (f.no === 8 && f.wire === 2) {
      const os = readFields(bytes, f.valStart, f.valEnd, what);
      const domain = os.find((x) => x.no === 1);
      const version = os.find((x) => x.no === 2 && x.wire === 0);
      if ((!domain || fieldString(bytes, domain) === '' || fieldString(bytes, domain) === 'ai.onnx') && version) opset = version.varint;
    }
  }
  const graphFields = withFile(file, () => readFields(bytes, graphField.valStart, graphField.valEnd, `${what} graph`));
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const inputs: OnnxValueInfo[] = [];
  const outputs: OnnxValueInfo[] = [];
  withFile(file, () => {
    for (const f of graphFields) {
      if (f.wire !== 2) continue;
      if (f.no === 1) nodes.push(readNode(bytes, f, what));
      else if (f.no === 5) initializers.push(readTensor(bytes, f, what));
      else if (f.no === 11) inputs.push(readValueInfo(bytes, f, what));
      else if (f.no === 12) outputs.push(readValueInfo(bytes, f, what));
    }
  });
  if (graphFields.some((f) => f.no === 15))
    fail('unsupported', `${file}: the graph has sparse initializers, which verify does not replace; export with dense weights`, file);
  return { file, bytes, irVersion: ir.varint, producer: producer.trim(), opset, graphField, graphFields, nodes, initializers, inputs, outputs };
}

/** Errors from the decoder name the file. */
function withFile<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = asCheckpointError(e, file);
    throw err.file ? err : new CheckpointError(err.kind, err.message, file);
  }
}

function readNode(buf: Uint8Array, f: PbField, what: string): OnnxNode {
  const node: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attrs: {} };
  for (const x of readFields(buf, f.valStart, f.valEnd, `${what} node`)) {
    if (x.wire !== 2) continue;
    if (x.no === 1) node.inputs.push(fieldString(buf, x));
    else if (x.no === 2) node.outputs.push(fieldString(buf, x));
    else if (x.no === 3) node.name = fieldString(buf, x);
    else if (x.no === 4) node.opType = fieldString(buf, x);
    else if (x.no === 7) node.domain = fieldString(buf, x);
    else if (x.no === 5) {
      // AttributeProto: name 1, f 2 (float), i 3 (int)
      let name = '';
      let value: number | null = null;
      for (const a of readFields(buf, x.valStart, x.valEnd, `${what} attribute`)) {
        if (a.no === 1 && a.wire === 2) name = fieldString(buf, a);
        else if (a.no === 2 && a.wire === 5) value = new DataView(buf.buffer, buf.byteOffset + a.valStart, 4).getFloat32(0, true);
        else if (a.no === 3 && a.wire === 0) value = a.varint;
      }
      if (name && value !== null) node.attrs[name] = value;
    }
  }
  return node;
}

function readTensor(buf: Uint8Array, f: PbField, what: string): OnnxInitializer {
  const fields = readFields(buf, f.valStart, f.valEnd, `${what} initializer`);
  const nameField = fields.find((x) => x.no === 8 && x.wire === 2);
  const name = nameField ? fieldString(buf, nameField) : '';
  const label = `${what} initializer ${JSON.stringify(name)}`;
  const dims = repeatedInts(
    buf,
    fields.filter((x) => x.no === 1),
    label,
  );
  const dtField = fields.find((x) => x.no === 2 && x.wire === 0);
  const dataType = dtField?.varint ?? 0;
  const type = ONNX_TYPES[dataType];
  if (!type) fail('unsupported', `${label}: data type ${dataType} is not one verify reads (strings and exotic types stay out of weights)`);
  if (dims.some((d) => d < 0 || !Number.isSafeInteger(d))) fail('not-a-checkpoint', `${label}: has a negative or huge dimension (${dims.join('x')})`);
  const numel = dims.reduce((a, b) => a * b, 1);
  let external: OnnxInitializer['external'] = null;
  const location = fields.find((x) => x.no === 14 && x.wire === 0);
  if (location?.varint === 1) {
    const entries = new Map<string, string>();
    for (const e of fields.filter((x) => x.no === 13 && x.wire === 2)) {
      const kv = readFields(buf, e.valStart, e.valEnd, label);
      const k = kv.find((x) => x.no === 1);
      const v = kv.find((x) => x.no === 2);
      if (k && v) entries.set(fieldString(buf, k), fieldString(buf, v));
    }
    const loc = entries.get('location');
    if (!loc) fail('not-a-checkpoint', `${label}: external data without a location`);
    const offset = Number(entries.get('offset') ?? 0);
    const length = entries.has('length') ? Number(entries.get('length')) : null;
    if (!Number.isSafeInteger(offset) || offset < 0 || (length !== null && (!Number.isSafeInteger(length) || length < 0)))
      fail('not-a-checkpoint', `${label}: external data offset/length are not whole numbers`);
    external = { location: loc, offset, length };
  }
  return { name, dims, dataType, dtype: type[0], numel, field: { start: f.start, end: f.end }, external, fields };
}

function readValueInfo(buf: Uint8Array, f: PbField, what: string): OnnxValueInfo {
  const fields = readFields(buf, f.valStart, f.valEnd, `${what} value_info`);
  const nameF = fields.find((x) => x.no === 1 && x.wire === 2);
  const info: OnnxValueInfo = { name: nameF ? fieldString(buf, nameF) : '', elemType: null, dims: null };
  const typeF = fields.find((x) => x.no === 2 && x.wire === 2);
  if (!typeF) return info;
  const tensorT = readFields(buf, typeF.valStart, typeF.valEnd, what).find((x) => x.no === 1 && x.wire === 2);
  if (!tensorT) return info;
  const tf = readFields(buf, tensorT.valStart, tensorT.valEnd, what);
  info.elemType = tf.find((x) => x.no === 1 && x.wire === 0)?.varint ?? null;
  const shapeF = tf.find((x) => x.no === 2 && x.wire === 2);
  if (!shapeF) return info;
  info.dims = readFields(buf, shapeF.valStart, shapeF.valEnd, what)
    .filter((x) => x.no === 1 && x.wire === 2)
    .map((d) => {
      const df = readFields(buf, d.valStart, d.valEnd, what);
      const v = df.find((x) => x.no === 1 && x.wire === 0);
      const p = df.find((x) => x.no === 2 && x.wire === 2);
      return v ? v.varint : p ? fieldString(buf, p) : '?';
    });
  return info;
}

/** The file an external location names, refused when it would leave the model's folder. */
export function externalPath(model: OnnxModel, location: string): string {
  const dir = path.dirname(path.resolve(model.file));
  const full = path.resolve(dir, location);
  if (path.isAbsolute(location) || !full.startsWith(dir + path.sep)) {
    fail(
      'unsupported',
      `${model.file}: external data location ${JSON.stringify(location)} points outside the model's folder; onnx and onnxruntime refuse that too`,
      model.file,
    );
  }
  return full;
}

/** An external initializer's declared `length` (when given) must be its dims × element size, as onnx's checker requires. */
export function checkExternalLength(model: OnnxModel, t: OnnxInitializer, nbytes: number): void {
  const length = t.external?.length ?? nbytes;
  if (length !== nbytes)
    fail(
      'not-a-checkpoint',
      `${model.file}: initializer ${JSON.stringify(t.name)}: external data length ${length} does not match ${t.dims.join('x')} × ${ONNX_TYPES[t.dataType]![1]} bytes`,
      model.file,
    );
}

/** An initializer's elements as little-endian bytes (what `numpy_helper.to_array(t).tobytes()` gives). */
export function initializerBytes(model: OnnxModel, t: OnnxInitializer): Uint8Array {
  const size = ONNX_TYPES[t.dataType]![1];
  const nbytes = t.numel * size;
  const label = `${model.file}: initializer ${JSON.stringify(t.name)}`;
  const buf = model.bytes;
  if (t.external) {
    const file = externalPath(model, t.external.location);
    checkExternalLength(model, t, nbytes);
    const out = new Uint8Array(nbytes);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      const err = asCheckpointError(e, file);
      fail(
        err.kind,
        `${label}: its external data ${t.external.location} cannot be read (${err.message.replace(/^.*?: /, '')}); keep it beside the .onnx file`,
        model.file,
      );
    }
    try {
      let done = 0;
      while (done < nbytes) {
        const n = fs.readSync(fd, out, done, nbytes - done, t.external.offset + done);
        if (n === 0)
          fail(
            'truncated',
            `${label}: ${t.external.location} ends before offset ${t.external.offset + nbytes}; the external data file is truncated`,
            model.file,
          );
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }
  const raw = t.fields.find((x) => x.no === 9 && x.wire === 2);
  if (raw) {
    if (raw.valEnd - raw.valStart !== nbytes)
      fail(
        'not-a-checkpoint',
        `${label}: raw_data holds ${raw.valEnd - raw.valStart} bytes, expected ${nbytes} for ${t.dims.join('x')} ${t.dtype}`,
        model.file,
      );
    return buf.subarray(raw.valStart, raw.valEnd);
  }
  return typedFieldBytes(model, t, nbytes, label);
}

/**
 * Data in the typed repeated fields (onnx.proto `TensorProto`): float_data (4) for float and
 * complex64; int32_data (5) for int32, int16, int8, uint16, uint8, bool, float16 and bfloat16 (the
 * bit pattern); int64_data (7); double_data (10) for double and complex128; uint64_data (11) for
 * uint32 and uint64.
 */
function typedFieldBytes(model: OnnxModel, t: OnnxInitializer, nbytes: number, label: string): Uint8Array {
  const buf = model.bytes;
  const out = new Uint8Array(nbytes);
  const dv = new DataView(out.buffer);
  const size = ONNX_TYPES[t.dataType]![1];
  const fixed = (no: number, width: 4 | 8): number => {
    let o = 0;
    for (const f of t.fields.filter((x) => x.no === no)) {
      const n = f.valEnd - f.valStart;
      if (o + n > nbytes || n % width) fail('not-a-checkpoint', `${label}: typed data does not match its shape`, model.file);
      out.set(buf.subarray(f.valStart, f.valEnd), o);
      o += n;
    }
    return o;
  };
  let wrote = 0;
  switch (t.dataType) {
    case 1:
    case 14:
      wrote = fixed(4, 4);
      break;
    case 11:
    case 15:
      wrote = fixed(10, 8);
      break;
    case 7:
    case 12:
    case 13: {
      const vals = repeatedInts(
        buf,
        t.fields.filter((x) => x.no === (t.dataType === 7 ? 7 : 11)),
        label,
      );
      if (vals.length * size !== nbytes) fail('not-a-checkpoint', `${label}: holds ${vals.length} values for ${t.numel} elements`, model.file);
      vals.forEach((v, i) => (size === 8 ? dv.setBigInt64(i * 8, BigInt(v), true) : dv.setUint32(i * 4, v >>> 0, true)));
      wrote = nbytes;
      break;
    }
    default: {
      const vals = repeatedInts(
        buf,
        t.fields.filter((x) => x.no === 5),
        label,
      );
      if (vals.length !== t.numel) fail('not-a-checkpoint', `${label}: holds ${vals.length} values for ${t.numel} elements`, model.file);
      vals.forEach((v, i) => {
        if (size === 4) dv.setInt32(i * 4, v, true);
        else if (size === 2) dv.setUint16(i * 2, v & 0xffff, true);
        else out[i] = v & 0xff;
      });
      wrote = nbytes;
    }
  }
  if (wrote !== nbytes) fail('not-a-checkpoint', `${label}: holds ${wrote} bytes of data, expected ${nbytes}`, model.file);
  return out;
}
