/** `1 tensor`, `16 tensors`: a count with its noun, for the CLI and the engine's messages alike. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
