import { fail } from '../errors.ts';
import type { Checkpoint } from '../checkpoint/inspect.ts';

/**
 * A plain pickle (`pickle.dump`, not `torch.save`) is not a checkpoint: writing it into a torch
 * file would give one that `torch.load` opens only with `weights_only=False` (numpy's
 * `_reconstruct` is not on torch's allow-list: torch/_weights_only_unpickler.py `_get_allowed_globals`),
 * and its numpy arrays would stay numpy arrays. So convert says what the file is and writes nothing.
 */
export function refusePlainPickle(ck: Checkpoint, source: string): void {
  if (ck.reading.format !== 'pickle') return;
  const arrays = ck.reading.globals
    .filter((g) => /^numpy\.(_core|core)\.multiarray$/.test(g.module) && g.name === '_reconstruct')
    .reduce((n, g) => n + g.calls, 0);
  const what = arrays ? `${arrays} numpy array${arrays === 1 ? '' : 's'}` : 'Python objects';
  const tensors = ck.tensors.length ? `${ck.tensors.length} torch tensors` : 'no torch tensors';
  fail(
    'unsupported',
    `${source}: a plain pickle (pickle.dump, not torch.save) of ${what} with ${tensors}; as a torch file it would load only with weights_only=False, so nothing was written; save the arrays with np.savez (ckpt converts .npz to tensors exactly) or torch.save them as tensors`,
    source,
  );
}
