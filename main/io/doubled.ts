/** A typed array twice as long, starting with `a`'s elements (a column that grows as rows are added). */
export function doubled<T extends Uint8Array | Uint32Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(Math.max(1, a.length * 2));
  b.set(a);
  return b;
}
