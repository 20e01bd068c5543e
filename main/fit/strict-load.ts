import type { KeyShape, SizeMismatch, StrictLoad } from '../../shared/fit.ts';

/** The checkpoint side of a load: its keys and shapes, and the `_metadata` versions `state_dict()` attached. */
export interface LoadSource {
  entries: KeyShape[];
  /** module path → `version`, from the state dict's `_metadata`; null when it has none */
  versions: Map<string, number> | null;
}

/**
 * What `model.load_state_dict(sd, strict=True)` reports, computed from keys and shapes alone,
 * following torch/nn/modules/module.py (`load_state_dict` and `_load_from_state_dict`):
 * - missing: the model's keys the state dict lacks, in the model's order. A BatchNorm's
 *   `num_batches_tracked` is not missing when `_metadata` gives its module no version ≥ 2:
 *   `_NormBase._load_from_state_dict` (torch/nn/modules/batchnorm.py) fills it in then;
 * - unexpected: keys the model does not have, reported by the module that meets them (parents
 *   before children), in the state dict's order;
 * - size mismatch: both have the key with other shapes. A 1-element 1-d tensor loads into a 0-d
 *   one (the 0.3 → 0.4 compatibility rule; torch 1.13 took any 1-d tensor's first element).
 */
export function strictLoad(source: LoadSource, target: KeyShape[], className: string): StrictLoad {
  const sourceShapes = new Map(source.entries.map((e) => [e.key, e.shape]));
  const targetShapes = new Map(target.map((e) => [e.key, e.shape]));
  const missing: string[] = [];
  const mismatched: SizeMismatch[] = [];
  for (const { key, shape } of target) {
    if (!sourceShapes.has(key)) {
      if (!filledByBatchNorm(key, source.versions)) missing.push(key);
      continue;
    }
    const have = sourceShapes.get(key) ?? null;
    if (have && shape && !shapesLoad(have, shape)) mismatched.push({ key, checkpointShape: have, modelShape: shape });
  }
  const unexpected = unexpectedInModuleOrder(
    source.entries.map((e) => e.key).filter((k) => !targetShapes.has(k)),
    target,
  );
  return { missing, unexpected, mismatched, message: loadErrorMessage(className, missing, unexpected, mismatched) };
}

function filledByBatchNorm(key: string, versions: Map<string, number> | null): boolean {
  if (key !== 'num_batches_tracked' && !key.endsWith('.num_batches_tracked')) return false;
  const module = key.slice(0, Math.max(0, key.length - '.num_batches_tracked'.length));
  const v = versions?.get(module);
  return v === undefined || v < 2;
}

export function shapesLoad(checkpoint: number[], model: number[]): boolean {
  if (model.length === 0 && checkpoint.length === 1 && checkpoint[0] === 1) return true;
  return checkpoint.length === model.length && checkpoint.every((d, i) => d === model[i]);
}

/**
 * torch walks the modules depth first; each reports the keys under its prefix whose next part
 * is neither its own parameter/buffer nor a child. The module tree is read off the model's keys
 * (modules without parameters, such as ReLU, are invisible there).
 */
interface ModuleTree {
  order: Map<string, number>;
  children: Map<string, Set<string>>;
  locals: Map<string, Set<string>>;
}

/** The model's module tree, built once per target (strict loading is asked before and after the rules). */
const trees = new WeakMap<KeyShape[], ModuleTree>();

function moduleTree(target: KeyShape[]): ModuleTree {
  const known = trees.get(target);
  if (known) return known;
  const order = new Map<string, number>([['', 0]]);
  const children = new Map<string, Set<string>>();
  const locals = new Map<string, Set<string>>();
  for (const { key } of target) {
    const parts = key.split('.');
    let path = '';
    for (let i = 0; i < parts.length - 1; i++) {
      const next = path ? `${path}.${parts[i]}` : parts[i]!;
      let kids = children.get(path);
      if (!kids) children.set(path, (kids = new Set()));
      kids.add(parts[i]!);
      if (!order.has(next)) order.set(next, order.size);
      path = next;
    }
    let own = locals.get(path);
    if (!own) locals.set(path, (own = new Set()));
    own.add(parts[parts.length - 1]!);
  }
  const tree = { order, children, locals };
  trees.set(target, tree);
  return tree;
}

function unexpectedInModuleOrder(keys: string[], target: KeyShape[]): string[] {
  if (!keys.length) return [];
  const { order, children, locals } = moduleTree(target);
  const placed: { key: string; module: number; index: number }[] = [];
  keys.forEach((key, index) => {
    let path = '';
    let rest = key;
    for (;;) {
      const dot = rest.indexOf('.');
      const first = dot < 0 ? rest : rest.slice(0, dot);
      if (dot >= 0 && children.get(path)?.has(first)) {
        path = path ? `${path}.${first}` : first;
        rest = rest.slice(dot + 1);
        continue;
      }
      // a key under one of the module's own parameter names is passed over silently
      if (!locals.get(path)?.has(first)) placed.push({ key, module: order.get(path) ?? 0, index });
      return;
    }
  });
  placed.sort((a, b) => a.module - b.module || a.index - b.index);
  return placed.map((p) => p.key);
}

/** `torch.Size([5, 128])` as torch prints it. */
export function torchSizeText(shape: number[]): string {
  return `torch.Size([${shape.join(', ')}])`;
}

/** The RuntimeError text `load_state_dict` raises (torch/nn/modules/module.py), or null when it loads. */
export function loadErrorMessage(className: string, missing: string[], unexpected: string[], mismatched: SizeMismatch[]): string | null {
  const msgs: string[] = [];
  const quoted = (keys: string[]): string => keys.map((k) => `"${k}"`).join(', ');
  if (missing.length) msgs.push(`Missing key(s) in state_dict: ${quoted(missing)}. `);
  if (unexpected.length) msgs.push(`Unexpected key(s) in state_dict: ${quoted(unexpected)}. `);
  for (const m of mismatched) {
    msgs.push(
      `size mismatch for ${m.key}: copying a param with shape ${torchSizeText(m.checkpointShape)} from checkpoint, the shape in current model is ${torchSizeText(m.modelShape)}.`,
    );
  }
  return msgs.length ? `Error(s) in loading state_dict for ${className}:\n\t${msgs.join('\n\t')}` : null;
}
