import type { Sym } from './symbols.ts';
import type { WeightsOnlyProfile } from './torch-allowlists.ts';

/**
 * Follows one pickle the way one torch version's `_weights_only_unpickler.Unpickler.load` would,
 * and remembers the first thing it would refuse (torch raises there and loads nothing).
 * Mirrors, opcode by opcode: GLOBAL (allowlist and `_blocklisted_modules`), NEWOBJ (Parameter,
 * or an allowed class in 2.x), REDUCE (an allowed function), BUILD (Tensor, Parameter,
 * OrderedDict, or an allowed class's instance in 2.x), APPEND(S) on a list, SETITEM(S) on a dict
 * type (2.x `_check_set_item_target`), BINPERSID ids (`'storage'` tuples or ints), and any
 * opcode outside its dispatch ("Unsupported operand").
 */
export class WeightsOnlyCheck {
  refusal: string | undefined;
  /** the non-allowlisted GLOBAL names, whatever else torch refuses first */
  readonly unsupported = new Set<string>();
  constructor(readonly profile: WeightsOnlyProfile) {}

  private refuse(offset: number, why: string): void {
    this.refusal ??= `${why} (byte ${offset})`;
  }

  opcode(op: number, offset: number, name: string): void {
    if (!this.profile.opcodes.has(op)) this.refuse(offset, `opcode ${name} is not supported by its weights-only unpickler`);
  }

  global(module: string, full: string, offset: number): void {
    if (this.profile.blocked.has(module)) {
      this.unsupported.add(full);
      this.refuse(offset, `GLOBAL ${full}: module ${module} is blocked`);
    } else if (!this.profile.allowed.has(full)) {
      this.unsupported.add(full);
      this.refuse(offset, `GLOBAL ${full} is not an allowed global`);
    }
  }

  newobj(cls: Sym, offset: number): void {
    if (cls.t === 'global' && cls.full === 'torch.nn.parameter.Parameter') return;
    if (this.profile.newobjAllowedClasses && cls.t === 'global' && this.profile.allowed.has(cls.full)) return;
    this.refuse(offset, `NEWOBJ of ${cls.t === 'global' ? cls.full : 'a computed value'}`);
  }

  reduce(fn: Sym, offset: number): void {
    if (!(fn.t === 'global' && this.profile.allowed.has(fn.full)))
      this.refuse(offset, `REDUCE of ${fn.t === 'global' ? fn.full : 'a value that is not an allowed global'}`);
  }

  build(target: Sym, offset: number): void {
    if (target.t === 'obj' && (target.type === 'Tensor' || target.type === 'Parameter')) return;
    if (target.t === 'dict' && target.type === 'OrderedDict') return;
    if (this.profile.newobjAllowedClasses && target.t === 'obj' && this.profile.allowed.has(target.type)) return;
    if (this.profile.newobjAllowedClasses && target.t === 'dict' && target.type === 'Counter') return;
    this.refuse(offset, `BUILD on ${describe(target)}`);
  }

  append(target: Sym, offset: number): void {
    if (target.t !== 'list') this.refuse(offset, `APPEND to ${describe(target)}`);
  }

  setitem(target: Sym, offset: number): void {
    if (target.t === 'dict') return;
    // 1.13 does `self.stack[-1][k] = v` unchecked: only dict-like values take it without raising.
    this.refuse(offset, `SETITEM on ${describe(target)}`);
  }

  persistent(pid: Sym, offset: number): void {
    if (pid.t !== 'tuple') {
      if (this.profile.refusesNonTuplePersistentId(pid.t === 'int' ? 'int' : 'other'))
        this.refuse(offset, `persistent id that is ${pid.t === 'int' ? 'an int' : 'not a tuple or int'}`);
      return;
    }
    const first = pid.items[0];
    if (pid.items.length > 0 && !(first?.t === 'str' && first.v === 'storage') && !(first?.t === 'bytes'))
      this.refuse(offset, 'persistent id that is not a storage');
  }

  /** A pickle that ends early or breaks: torch raises too. */
  broken(why: string): void {
    this.refusal ??= why;
  }
}

function describe(s: Sym): string {
  switch (s.t) {
    case 'global':
      return s.full;
    case 'obj':
      return `a ${s.type} instance`;
    case 'dict':
      return s.type;
    default:
      return `a ${s.t}`;
  }
}
