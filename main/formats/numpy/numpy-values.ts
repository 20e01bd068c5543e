import { PyBytes, PyObject, PyTuple, type PyValue } from '../values/python-values.ts';

/**
 * numpy values inside pickles, read without numpy: `numpy.core.multiarray.scalar(dtype, bytes)`
 * (numpy ≥ 2: `numpy._core.multiarray.scalar`), with the dtype pickled as
 * `numpy.dtype('f8', False, True)` plus a BUILD state `(3, '<', ...)`.
 */
export function numpyDtypeOf(v: PyValue): { descr: string; littleEndian: boolean } | null {
  if (!(v instanceof PyObject) || !/^numpy\.(dtype|dtypes\.\w+)$/.test(v.className)) return null;
  const descr = v.args[0];
  if (typeof descr !== 'string') return null;
  const st = v.state;
  const order = st instanceof PyTuple ? st.items[1] : '<';
  return { descr, littleEndian: order !== '>' };
}

const SCALAR = /^numpy\.(_?core)\.multiarray\.scalar$/;

export function isNumpyScalar(v: PyValue): v is PyObject {
  return v instanceof PyObject && SCALAR.test(v.className);
}

/** The number a numpy scalar holds (bool, int, float), or null if its dtype is not numeric. */
export function numpyScalarValue(v: PyValue): number | bigint | boolean | null {
  if (!isNumpyScalar(v)) return null;
  const dt = numpyDtypeOf(v.args[0] ?? null);
  const raw = v.args[1];
  const bytes = raw instanceof PyBytes ? raw.data : typeof raw === 'string' ? Uint8Array.from(raw, (c) => c.charCodeAt(0) & 0xff) : null;
  if (!dt || !bytes) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = dt.littleEndian;
  const n = bytes.length;
  try {
    switch (dt.descr.replace(/^[<>|=]/, '')) {
      case 'f8':
        return dv.getFloat64(0, le);
      case 'f4':
        return dv.getFloat32(0, le);
      case 'i8':
        return dv.getBigInt64(0, le);
      case 'u8':
        return dv.getBigUint64(0, le);
      case 'i4':
        return dv.getInt32(0, le);
      case 'u4':
        return dv.getUint32(0, le);
      case 'i2':
        return dv.getInt16(0, le);
      case 'u2':
        return dv.getUint16(0, le);
      case 'i1':
        return dv.getInt8(0);
      case 'u1':
        return dv.getUint8(0);
      case 'b1':
        return n > 0 && bytes[0] !== 0;
    }
  } catch {
    return null;
  }
  return null;
}
