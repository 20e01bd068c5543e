/**
 * The building blocks of the API's argument schemas (valibot), each with the one-line message a
 * wrong argument gets. A schema's message is what follows the argument's name and path
 * (`must be a string, not number`); `checkValue` puts them together:
 * `rules.preset.worldSize must be a whole number from 1 to 4096, not 0`.
 * The types the contract names (`ConversionRules`, `VerifyOptions`, …) are derived from these
 * schemas next to where they are declared. No Node, no DOM: the renderer imports the types.
 */
import * as v from 'valibot';

export const MAX_TEXT = 4096;
export const MAX_LIST = 256;

export const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A value as a message names it: `'text'`, `number`, `a list`, `nothing`. */
export const show = (x: unknown): string =>
  x === undefined ? 'nothing' : Array.isArray(x) ? 'a list' : x === null ? 'null' : typeof x === 'string' ? `'${x.slice(0, 60)}'` : typeof x;

/** A message built from the value that failed. */
const saying =
  /* @__NO_SIDE_EFFECTS__ */
    (what: string) =>
    (issue: v.BaseIssue<unknown>): string =>
      `${what}, not ${show(issue.input)}`;

export const text = v.pipe(
  v.string(saying('must be a string')),
  v.maxLength(MAX_TEXT, `is longer than ${MAX_TEXT} characters`),
  v.check((s) => !s.includes('\0'), 'contains a NUL character'),
);

/** `path.posix.normalize` without Node: `.` and `..` resolved, repeated slashes folded, a trailing slash kept. */
export function normalizePath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  const body = `/${out.join('/')}`;
  return p.endsWith('/') && body !== '/' ? `${body}/` : body;
}

/** An absolute path (Node's `path.isAbsolute` on POSIX), normalised. */
export const absolutePath = v.pipe(
  text,
  v.check((s) => s.startsWith('/'), saying('must be an absolute path')),
  v.transform(normalizePath),
);

export const wholeNumber = /* @__NO_SIDE_EFFECTS__ */ (lo: number, hi: number) =>
  v.custom<number>((x) => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi, saying(`must be a whole number from ${lo} to ${hi}`));

export const bool = v.boolean(saying('must be true or false'));

export const oneOf = /* @__NO_SIDE_EFFECTS__ */ <const T extends readonly [string, ...string[]]>(values: T) =>
  v.picklist(values, saying(`must be one of ${values.join(', ')}`));

/** A finite number in `[lo, hi]` (`(lo, hi]` with `openLo`). */
export const finite = /* @__NO_SIDE_EFFECTS__ */ (lo: number, hi = Infinity, openLo = false) => {
  const range = lo === -Infinity ? '' : openLo ? ` above ${lo}` : hi < Infinity ? ` from ${lo} to ${hi}` : ` of ${lo} or more`;
  return v.custom<number>(
    (x) => typeof x === 'number' && Number.isFinite(x) && x >= lo && !(openLo && x === lo) && x <= hi,
    (issue) => `must be a number${range}, not ${typeof issue.input === 'number' ? issue.input : show(issue.input)}`,
  );
};

/** A list of at most MAX_LIST entries, each checked. */
export const list = /* @__NO_SIDE_EFFECTS__ */ <T extends v.GenericSchema>(item: T) =>
  v.pipe(v.array(item, saying('must be a list')), v.maxLength(MAX_LIST, `has more than ${MAX_LIST} entries`));

/** A finite number other than 0 (a divisor). */
export const nonZero = v.pipe(
  finite(-Infinity),
  v.check((x) => x !== 0, 'must not be 0'),
);

/** At least one number, each checked. */
export const numbers = /* @__NO_SIDE_EFFECTS__ */ <T extends v.GenericSchema<unknown, number>>(item: T) =>
  v.pipe(list(item), v.minLength(1, 'must have at least one number'));

/** The object without its fields set to undefined (IPC carries them; an optional field so given counts as not set). */
export function withoutUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/** A valid JavaScript regular expression. */
export const regex = v.pipe(
  text,
  v.check(
    (s) => regexError(s) === null,
    (issue) => `: ${regexError(issue.input as string)}`,
  ),
);

export function regexError(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch (e) {
    return `'${pattern}' is not a valid regular expression (${(e as Error).message})`;
  }
}

/**
 * The message of an object's own issues: not an object; a field not known; a field missing,
 * which says `is missing`, or (`missing` null) what the field's own check says of nothing.
 */
const objectMessage =
  /* @__NO_SIDE_EFFECTS__ */
    (entries: v.ObjectEntries, missing: string | null) =>
    (issue: v.BaseIssue<unknown>): string => {
      if (issue.expected === 'never') return `has an unknown field '${String(issue.input).slice(0, 60)}'`;
      const step = issue.path?.at(-1);
      if (step?.origin !== 'key') return `must be an object, not ${show(issue.input)}`;
      const entry = entries[String(step.key)];
      const own = entry && missing === null ? checkValue(entry, undefined, '') : null;
      return own && !own.ok ? own.message.trimStart() : (missing ?? 'is missing');
    };

/** Anything but a list (valibot's object and record schemas take a list as an object). */
export const notAList = v.custom<unknown>((x) => !Array.isArray(x), 'must be an object, not a list');

const OPTIONAL = new Set(['optional', 'exact_optional', 'nullish']);

/**
 * An object with exactly these fields. As the API always said: a field not known first, then a
 * field missing (`missing`; null: what the field's own check says of nothing), then each field
 * in order.
 */
export const fields = /* @__NO_SIDE_EFFECTS__ */ <E extends v.ObjectEntries>(entries: E, missing: string | null = 'is missing') =>
  v.pipe(
    v.unknown(),
    v.rawCheck(({ dataset, addIssue }) => {
      const o = dataset.value;
      if (!isRecord(o)) return addIssue({ message: `must be an object, not ${show(o)}` });
      const extra = Object.keys(o).find((k) => !Object.hasOwn(entries, k));
      if (extra !== undefined) return addIssue({ message: `has an unknown field '${extra.slice(0, 60)}'` });
      const absent = missing === null ? undefined : Object.keys(entries).find((k) => !(k in o) && !OPTIONAL.has(entries[k]!.type));
      if (absent !== undefined) addIssue({ message: missing ?? '', path: [{ type: 'object', origin: 'value', input: o, key: absent, value: undefined }] });
    }),
    v.strictObject(entries, objectMessage(entries, missing)),
  );

/** `fields` as a variant's option (valibot picks the option by its discriminator field first). */
export const variantFields = /* @__NO_SIDE_EFFECTS__ */ <E extends v.ObjectEntries>(entries: E) => v.strictObject(entries, objectMessage(entries, null));

/**
 * An object with at least these fields, each checked; other fields are let through (kept as
 * they are). Its type names the checked fields only, as any object type does.
 */
export const shaped = /* @__NO_SIDE_EFFECTS__ */ <E extends v.ObjectEntries>(entries: E) =>
  v.looseObject(entries, objectMessage(entries, null)) as unknown as v.ObjectSchema<E, (issue: v.ObjectIssue) => string>;

/** The key of a path step as a message writes it: `.name`, `[3]`, `['cuda:0']`. */
const pathStep = (key: unknown): string =>
  typeof key === 'number' ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(String(key)) ? `.${String(key)}` : `['${String(key).slice(0, 60)}']`;

/** One line for the first issue: the argument's name, the path to the value, what is wrong with it. */
export function issueLine(name: string, issue: v.BaseIssue<unknown>): string {
  const steps = [...(issue.path ?? [])];
  // an unknown field or a bad record key is said of the object that holds it
  if (steps.at(-1)?.origin === 'key' && issue.expected !== `"${String(steps.at(-1)?.key)}"`) steps.pop();
  const where = name + steps.map((s) => pathStep(s.key)).join('');
  return issue.message.startsWith(':') ? `${where}${issue.message}` : `${where} ${issue.message}`;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

/** The checked (and normalised) value, or the one line saying what is wrong with it. */
export function checkValue<S extends v.GenericSchema>(schema: S, value: unknown, name: string): Checked<v.InferOutput<S>> {
  const r = v.safeParse(schema, value, { abortEarly: true });
  return r.success ? { ok: true, value: r.output } : { ok: false, message: issueLine(name, r.issues[0]) };
}
